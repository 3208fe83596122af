// inorder/share.hpp: state shared by a process and every worker forked after it.
//
// Contract. A Share owns one anonymous shared-memory arena. Every process forked
// after the Share was made (ParallelQueue and Pool workers, a plain fork()) sees
// the same arena at the same address, and uses it through typed handles made by
// name: Number<T> (lock-free atomics), Value<T> (any encodable T), List<T>,
// Map<K, V> and Log. Every operation of a handle is atomic and linearizable:
// 4 processes x 25,000 increments is exactly 100,000, and no append, insertion
// or update is ever lost. Values, lists, maps and logs are guarded by one robust
// process-shared mutex per Share: a process killed while holding it (inside
// update(), a transaction, or anywhere in between) leaves the last committed
// state, because every change is written into fresh space or recorded in an
// undo journal first, and the next process to lock rolls the rest back and goes
// on. transaction(f) runs f under that lock: its value, list, map and log
// operations are seen by other processes all at once or not at all.
//
// Not promised: Number operations are lock-free and never take the lock, so a
// transaction does not exclude them, and a Number changed inside a transaction
// that then throws or dies keeps its change. A Share is not visible to a
// process forked before it was made (its handles throw ShareNotInherited
// there), nor to unrelated processes. The arena never shrinks: freed space is
// reused for later values of a similar size (docs/share.md says exactly what is
// reclaimed). docs/share.md has examples.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include "inorder/codec.hpp"
#include "inorder/errors.hpp"

namespace inorder {

/// How a Share is set up. Designated initializers: Share share({.max_bytes = 64 << 20}).
struct ShareOptions {
  /// Bytes the arena may grow to for values, lists, maps, logs and names. The
  /// whole range is reserved (not committed) at construction, so the arena
  /// grows without remapping and every process sees it at one address; memory
  /// is used only as it is written. Past it, operations throw ShareFull.
  /// Default 1 GiB. Must be >= 4096.
  std::size_t max_bytes = std::size_t{1} << 30;
};

/// Severity of a Log entry.
enum class LogLevel : std::uint8_t { kInfo = 0, kWarn = 1, kError = 2 };

/// One entry of a Log, as messages()/entries() return it.
struct LogEntry {
  LogLevel level = LogLevel::kInfo;
  pid_t pid = 0;     ///< process that wrote it
  std::string text;  ///< the message

  friend bool operator==(const LogEntry&, const LogEntry&) = default;
};

class Share;

namespace detail {

/// What a handle knows about its Share: the arena's identity and address.
struct ShareRef {
  std::uint64_t id = 0;       ///< unique per Share: creator pid << 32 | per-process counter
  std::byte* base = nullptr;  ///< start of the arena, the same in every process that has it
};

enum class ShareKind : std::uint32_t { kNumber = 1, kValue = 2, kList = 3, kMap = 4, kLog = 5 };

/// The element type a name was made with, compared when it is opened again.
struct ShareType {
  std::size_t hash;
  std::size_t size;
  const char* name;  ///< mangled, for error messages
};

template <class T>
ShareType share_type() noexcept {
  return {typeid(T).hash_code(), sizeof(T), typeid(T).name()};
}

/// Bytes inside the arena (valid while the lock is held).
struct ShareBlob {
  const std::byte* data = nullptr;
  std::size_t size = 0;
};

/// Throws ShareNotInherited unless ref's arena is mapped in this process.
void share_check(ShareRef ref);

/// The Share's lock, held by this thread for the lifetime of the object.
/// Nested ShareLocks of one thread (a transaction calling handles) share one
/// acquisition. On destruction: if an exception is unwinding through it, every
/// change made since its construction is undone; otherwise the outermost one
/// commits and unlocks. Throws ShareNotInherited (from the constructor).
class ShareLock {
 public:
  explicit ShareLock(ShareRef ref);
  ~ShareLock();
  ShareLock(const ShareLock&) = delete;
  ShareLock& operator=(const ShareLock&) = delete;

 private:
  ShareRef ref_;
  std::uint64_t mark_;  // journal length at construction; undo target
  int uncaught_;        // std::uncaught_exceptions() at construction
};

// Everything below requires a ShareLock on ref held by the calling thread.

/// Looks `name` up: its object offset, or 0 when absent. Throws
/// ShareTypeMismatch when it exists with another kind or type.
std::uint64_t share_lookup(ShareRef ref, std::string_view name, ShareKind kind,
                           const ShareType& type);
/// Makes `name` refer to the object at `obj` (allocated by share_alloc).
void share_bind(ShareRef ref, std::string_view name, ShareKind kind, const ShareType& type,
                std::uint64_t obj);
/// A block of `n` bytes not reachable from anything yet; its data starts at
/// share_data(). Throws ShareFull.
std::uint64_t share_alloc(ShareRef ref, std::size_t n);
/// Bytes in front of each arena block's data: [size class][data length].
/// The allocator (src/share/share.cpp) lays blocks out with the same constant.
inline constexpr std::size_t kShareBlockHeader = 16;
/// Data of the block at `off`, 16-byte aligned.
inline std::byte* share_data(ShareRef ref, std::uint64_t off) noexcept {
  return ref.base + off + kShareBlockHeader;
}

/// An object of a kind made empty (lists, maps, logs): allocated, initialised.
std::uint64_t share_make_container(ShareRef ref, ShareKind kind);

/// A Value's current bytes.
ShareBlob share_value_get(ShareRef ref, std::uint64_t obj);
/// Makes `block` the Value's bytes; the old block is freed at commit.
void share_value_set(ShareRef ref, std::uint64_t obj, std::uint64_t block);
/// Makes a Value object whose first bytes are `block`.
std::uint64_t share_make_value(ShareRef ref, std::uint64_t block);

std::size_t share_list_size(ShareRef ref, std::uint64_t obj);
/// Appends `block` (one element's bytes) to the list.
void share_list_push(ShareRef ref, std::uint64_t obj, std::uint64_t block);
/// Element i; throws std::out_of_range.
ShareBlob share_list_at(ShareRef ref, std::uint64_t obj, std::size_t i);

std::size_t share_map_size(ShareRef ref, std::uint64_t obj);
/// Inserts or replaces the entry in `block` ([u64 key length][key][value]).
/// Returns true if the key was new.
bool share_map_put(ShareRef ref, std::uint64_t obj, std::uint64_t block);
/// The value bytes stored for `key`; nullopt when absent.
std::optional<ShareBlob> share_map_find(ShareRef ref, std::uint64_t obj, ShareBlob key);
/// Removes `key`; false when absent.
bool share_map_erase(ShareRef ref, std::uint64_t obj, ShareBlob key);
/// Calls visit(ctx, key, value) for every entry (in no particular order).
void share_map_visit(ShareRef ref, std::uint64_t obj, void* ctx,
                     void (*visit)(void* ctx, ShareBlob key, ShareBlob value));

/// Encodes v into a fresh block (share_alloc) and returns its offset.
template <class T>
std::uint64_t share_encode_block(ShareRef ref, const T& v) {
  const std::size_t n = encoded_size(v);
  const std::uint64_t block = share_alloc(ref, n);
  Writer w(share_data(ref, block));
  encode(w, v);
  return block;
}

template <class T>
T share_decode(ShareBlob b) {
  return decode_from<T>(b.data, b.size);
}

/// update(fn) with fn: T(T), as opposed to void(T&).
template <class F, class T>
concept ShareReturnsValue = requires(F& f, T&& v) {
  { std::invoke(f, std::move(v)) } -> std::convertible_to<T>;
};

/// A readable compile error for a type a Share cannot store.
template <class T>
constexpr void share_require_encodable() {
  static_assert(Encodable<T>,
                "inorder::Share stores values through the codec: this type is not encodable "
                "(see docs/codec.md for the inorder::codec<T> hook)");
}

}  // namespace detail

/// The owner of one shared arena. Make it in the parent before the workers are
/// forked (before the ParallelQueue, Pool or fork() that should see it); make
/// the handles by name there or in any worker. The Share object itself may be
/// used from any thread of any process that inherited it.
///
/// Lifetime: the destructor unmaps the arena in the process that runs it.
/// Forked processes keep their inherited mapping until they exit, so a worker
/// still running when the parent destroys the Share keeps working on its copy of
/// the mapping (the memory is freed when the last process unmaps it); the
/// parent's handles throw ShareNotInherited from then on. Workers never run the
/// destructor (they end with _exit).
class Share {
 public:
  using Options = ShareOptions;

  // ---- handles: cheap, trivially copyable, capture them in put() lambdas ----

  /// An atomic number (std::atomic<T> in the arena). Lock-free, exact under any
  /// contention, never blocks, never takes the Share's lock. Every operation
  /// throws ShareNotInherited in a process without the arena, nothing else.
  template <class T>
  class Number {
   public:
    static_assert(std::is_arithmetic_v<T> && !std::is_same_v<T, bool>,
                  "inorder::Share::Number<T> needs an integer or floating-point T");
    static_assert(std::atomic<T>::is_always_lock_free,
                  "inorder::Share::Number<T> needs a lock-free std::atomic<T>: an emulated "
                  "atomic is not shared across processes");

    Number() = default;
    /// Current value. \note seq_cst, like every operation here.
    [[nodiscard]] T load() const { return atom().load(); }
    void store(T v) const { atom().store(v); }
    /// Stores v; returns the previous value.
    T exchange(T v) const { return atom().exchange(v); }
    /// If the value equals `expected`, stores `desired` and returns true;
    /// otherwise loads the value into `expected` and returns false.
    bool compare_exchange(T& expected, T desired) const {
      return atom().compare_exchange_strong(expected, desired);
    }
    /// Adds d; returns the previous value.
    T fetch_add(T d) const { return atom().fetch_add(d); }
    T fetch_sub(T d) const { return atom().fetch_sub(d); }
    /// Adds d; returns the new value.
    T operator+=(T d) const { return static_cast<T>(fetch_add(d) + d); }
    T operator-=(T d) const { return static_cast<T>(fetch_sub(d) - d); }
    T operator++() const { return *this += T{1}; }
    T operator--() const { return *this -= T{1}; }
    T operator++(int) const { return fetch_add(T{1}); }
    T operator--(int) const { return fetch_sub(T{1}); }
    operator T() const { return load(); }  // NOLINT: reads like a plain number

   private:
    friend class Share;
    Number(detail::ShareRef ref, std::uint64_t obj) : ref_(ref), obj_(obj) {}
    std::atomic<T>& atom() const {
      detail::share_check(ref_);
      return *reinterpret_cast<std::atomic<T>*>(detail::share_data(ref_, obj_));
    }
    detail::ShareRef ref_{};
    std::uint64_t obj_ = 0;
  };

  /// Any encodable T. get/set/update take the Share's lock (blocking while
  /// another process holds it); update's fn runs under it.
  template <class T>
  class Value {
   public:
    Value() = default;
    /// A copy of the current value. Throws ShareNotInherited, DecodeError
    /// (never for values this Share wrote).
    [[nodiscard]] T get() const {
      detail::ShareLock lock(ref_);
      return detail::share_decode<T>(detail::share_value_get(ref_, obj_));
    }
    /// Replaces the value. Throws ShareNotInherited, ShareFull.
    void set(const T& v) const {
      detail::ShareLock lock(ref_);
      detail::share_value_set(ref_, obj_, detail::share_encode_block(ref_, v));
    }
    /// Applies fn to the value atomically and returns the new value. fn is
    /// either T(T) (returns the new value) or void(T&) (changes it in place).
    /// No other process reads or writes this Share's locked state while fn
    /// runs. If fn throws, or the process dies inside it, the value is
    /// unchanged. Keep fn short: everyone else waits for it.
    template <class F>
    T update(F&& fn) const {
      detail::ShareLock lock(ref_);
      T v = detail::share_decode<T>(detail::share_value_get(ref_, obj_));
      if constexpr (detail::ShareReturnsValue<F, T>) {
        v = std::invoke(fn, std::move(v));
      } else {
        static_assert(std::is_invocable_v<F&, T&>,
                      "inorder::Share::Value<T>::update(fn): fn must be T(T) or void(T&)");
        std::invoke(fn, v);
      }
      detail::share_value_set(ref_, obj_, detail::share_encode_block(ref_, v));
      return v;
    }

   private:
    friend class Share;
    Value(detail::ShareRef ref, std::uint64_t obj) : ref_(ref), obj_(obj) {}
    detail::ShareRef ref_{};
    std::uint64_t obj_ = 0;
  };

  /// An append-only list of encodable T, in the order the appends took the
  /// lock. Every operation takes the Share's lock (blocking while another
  /// process holds it) and throws ShareNotInherited in a process without the
  /// arena.
  template <class T>
  class List {
   public:
    List() = default;
    /// Appends v; returns its index. Throws ShareNotInherited, ShareFull.
    std::size_t push_back(const T& v) const {
      detail::ShareLock lock(ref_);
      const std::size_t index = detail::share_list_size(ref_, obj_);
      detail::share_list_push(ref_, obj_, detail::share_encode_block(ref_, v));
      return index;
    }
    [[nodiscard]] std::size_t size() const {
      detail::ShareLock lock(ref_);
      return detail::share_list_size(ref_, obj_);
    }
    /// Element i; throws std::out_of_range when i >= size().
    [[nodiscard]] T at(std::size_t i) const {
      detail::ShareLock lock(ref_);
      return detail::share_decode<T>(detail::share_list_at(ref_, obj_, i));
    }
    /// Every element, as of one instant.
    [[nodiscard]] std::vector<T> snapshot() const {
      detail::ShareLock lock(ref_);
      const std::size_t n = detail::share_list_size(ref_, obj_);
      std::vector<T> out;
      out.reserve(n);
      for (std::size_t i = 0; i < n; ++i)
        out.push_back(detail::share_decode<T>(detail::share_list_at(ref_, obj_, i)));
      return out;
    }

   private:
    friend class Share;
    List(detail::ShareRef ref, std::uint64_t obj) : ref_(ref), obj_(obj) {}
    detail::ShareRef ref_{};
    std::uint64_t obj_ = 0;
  };

  /// A hash map from encodable K to encodable V. Keys are equal when their
  /// encodings are equal (true for integers, strings and containers of them).
  /// Every operation takes the Share's lock (blocking while another process
  /// holds it) and throws ShareNotInherited in a process without the arena.
  template <class K, class V>
  class Map {
   public:
    Map() = default;
    /// Inserts or replaces; returns true if the key was new. Throws
    /// ShareNotInherited, ShareFull.
    bool insert_or_assign(const K& key, const V& value) const {
      detail::ShareLock lock(ref_);
      const std::size_t kn = encoded_size(key);
      const std::size_t n = sizeof(std::uint64_t) + kn + encoded_size(value);
      const std::uint64_t block = detail::share_alloc(ref_, n);
      std::byte* p = detail::share_data(ref_, block);
      const std::uint64_t klen = kn;
      std::memcpy(p, &klen, sizeof klen);
      Writer w(p + sizeof klen);
      encode(w, key);
      encode(w, value);
      return detail::share_map_put(ref_, obj_, block);
    }
    /// The value stored for key, or nullopt.
    [[nodiscard]] std::optional<V> find(const K& key) const {
      const std::vector<std::byte> k = encode_to_vector(key);
      detail::ShareLock lock(ref_);
      if (auto b = detail::share_map_find(ref_, obj_, {k.data(), k.size()}))
        return detail::share_decode<V>(*b);
      return std::nullopt;
    }
    /// Removes key; returns whether it was there.
    bool erase(const K& key) const {
      const std::vector<std::byte> k = encode_to_vector(key);
      detail::ShareLock lock(ref_);
      return detail::share_map_erase(ref_, obj_, {k.data(), k.size()});
    }
    [[nodiscard]] std::size_t size() const {
      detail::ShareLock lock(ref_);
      return detail::share_map_size(ref_, obj_);
    }
    /// Every entry, as of one instant, ordered by K's operator<.
    [[nodiscard]] std::map<K, V> snapshot() const {
      std::map<K, V> out;
      detail::ShareLock lock(ref_);
      detail::share_map_visit(ref_, obj_, &out,
                              [](void* ctx, detail::ShareBlob k, detail::ShareBlob v) {
                                static_cast<std::map<K, V>*>(ctx)->insert_or_assign(
                                    detail::share_decode<K>(k), detail::share_decode<V>(v));
                              });
      return out;
    }

   private:
    friend class Share;
    Map(detail::ShareRef ref, std::uint64_t obj) : ref_(ref), obj_(obj) {}
    detail::ShareRef ref_{};
    std::uint64_t obj_ = 0;
  };

  /// Messages with a level and the writer's pid, kept in the order they were
  /// written (the order their writers took the lock). Every operation takes
  /// the Share's lock; throws ShareNotInherited in a process without the arena.
  class Log {
   public:
    Log() = default;
    void info(std::string_view text) const { write(LogLevel::kInfo, text); }
    void warn(std::string_view text) const { write(LogLevel::kWarn, text); }
    void error(std::string_view text) const { write(LogLevel::kError, text); }
    /// Appends one entry. Throws ShareNotInherited, ShareFull.
    void write(LogLevel level, std::string_view text) const;
    /// The texts, in write order.
    [[nodiscard]] std::vector<std::string> messages() const;
    /// The entries (level, pid, text), in write order.
    [[nodiscard]] std::vector<LogEntry> entries() const;
    [[nodiscard]] std::size_t size() const {
      detail::ShareLock lock(ref_);
      return detail::share_list_size(ref_, obj_);
    }

   private:
    friend class Share;
    Log(detail::ShareRef ref, std::uint64_t obj) : ref_(ref), obj_(obj) {}
    detail::ShareRef ref_{};
    std::uint64_t obj_ = 0;
  };

  // ---- the Share ----

  /// Reserves the arena. Throws std::invalid_argument (max_bytes < 4096),
  /// std::system_error (mmap or mutex set-up failed).
  explicit Share(const Options& opts = {});
  /// Unmaps the arena in this process (see the class comment). Never throws.
  ~Share();
  Share(const Share&) = delete;
  Share& operator=(const Share&) = delete;

  // Each of these opens `name`, making it with the given initial state when it
  // does not exist yet. Any process that has the arena may call them. They
  // take the lock; they throw ShareTypeMismatch when the name exists with
  // another kind or type, ShareNotInherited, ShareFull.
  template <class T>
  Number<T> number(std::string_view name, T initial = T{}) {
    return open<Number<T>, detail::ShareKind::kNumber, T>(name, [&] {
      const std::uint64_t obj = detail::share_alloc(ref_, sizeof(std::atomic<T>));
      new (detail::share_data(ref_, obj)) std::atomic<T>(initial);
      return obj;
    });
  }
  /// Same as number<T>(): reads better for a count that starts at zero.
  template <class T>
  Number<T> counter(std::string_view name) {
    return number<T>(name, T{});
  }
  template <class T>
  Value<T> value(std::string_view name, const T& initial = T{}) {
    detail::share_require_encodable<T>();
    return open<Value<T>, detail::ShareKind::kValue, T>(name, [&] {
      return detail::share_make_value(ref_, detail::share_encode_block(ref_, initial));
    });
  }
  template <class T>
  List<T> list(std::string_view name) {
    detail::share_require_encodable<T>();
    return open<List<T>, detail::ShareKind::kList, T>(
        name, [&] { return detail::share_make_container(ref_, detail::ShareKind::kList); });
  }
  template <class K, class V>
  Map<K, V> map(std::string_view name) {
    detail::share_require_encodable<K>();
    detail::share_require_encodable<V>();
    return open<Map<K, V>, detail::ShareKind::kMap, std::pair<K, V>>(
        name, [&] { return detail::share_make_container(ref_, detail::ShareKind::kMap); });
  }
  Log log(std::string_view name);

  /// The handle of an existing name, or nullopt when nothing has that name.
  /// H is the handle type: share.find<Share::List<int>>("items"). Throws
  /// ShareTypeMismatch when the name holds something else.
  template <class H>
  [[nodiscard]] std::optional<H> find(std::string_view name) {
    detail::ShareLock lock(ref_);
    const std::uint64_t obj = lookup_<H>(name);
    if (obj == 0) return std::nullopt;
    return H(ref_, obj);
  }

  /// Whether `name` exists (of any kind).
  [[nodiscard]] bool contains(std::string_view name) const;

  /// Runs f() under the Share's lock and returns what it returns: the value,
  /// list, map and log operations f makes are seen by other processes all at
  /// once, and none of theirs runs in between. If f throws, or the process dies
  /// inside it, all of them are undone. Number operations are not part of it
  /// (they never take the lock; see the header comment). Nested transactions
  /// join the outer one. May block while another process holds the lock.
  /// Do not fork inside f.
  template <class F>
  decltype(auto) transaction(F&& f) {
    detail::ShareLock lock(ref_);
    return std::invoke(std::forward<F>(f));
  }

  /// Bytes of the arena handed out so far (never decreases; freed blocks are
  /// reused from inside it).
  [[nodiscard]] std::size_t used_bytes() const;
  [[nodiscard]] std::size_t max_bytes() const noexcept { return max_bytes_; }

 private:
  template <class H, detail::ShareKind kKind, class T, class Make>
  H open(std::string_view name, Make&& make) {
    detail::ShareLock lock(ref_);
    const detail::ShareType type = detail::share_type<T>();
    std::uint64_t obj = detail::share_lookup(ref_, name, kKind, type);
    if (obj == 0) {
      obj = make();
      detail::share_bind(ref_, name, kKind, type, obj);
    }
    return H(ref_, obj);
  }

  template <class H>
  std::uint64_t lookup_(std::string_view name);

  detail::ShareRef ref_{};
  std::size_t max_bytes_ = 0;
  std::size_t mapped_bytes_ = 0;
};

static_assert(std::is_trivially_copyable_v<Share::Number<long>> &&
                  std::is_trivially_copyable_v<Share::Value<std::string>> &&
                  std::is_trivially_copyable_v<Share::List<int>> &&
                  std::is_trivially_copyable_v<Share::Map<int, int>> &&
                  std::is_trivially_copyable_v<Share::Log>,
              "Share handles must be trivially copyable so a put() lambda can capture them");

namespace detail {
template <class H>
struct ShareHandleTraits;
template <class T>
struct ShareHandleTraits<Share::Number<T>> {
  static constexpr ShareKind kKind = ShareKind::kNumber;
  using Type = T;
};
template <class T>
struct ShareHandleTraits<Share::Value<T>> {
  static constexpr ShareKind kKind = ShareKind::kValue;
  using Type = T;
};
template <class T>
struct ShareHandleTraits<Share::List<T>> {
  static constexpr ShareKind kKind = ShareKind::kList;
  using Type = T;
};
template <class K, class V>
struct ShareHandleTraits<Share::Map<K, V>> {
  static constexpr ShareKind kKind = ShareKind::kMap;
  using Type = std::pair<K, V>;
};
template <>
struct ShareHandleTraits<Share::Log> {
  static constexpr ShareKind kKind = ShareKind::kLog;
  using Type = LogEntry;
};
}  // namespace detail

template <class H>
std::uint64_t Share::lookup_(std::string_view name) {
  using Traits = detail::ShareHandleTraits<H>;
  return detail::share_lookup(ref_, name, Traits::kKind,
                              detail::share_type<typename Traits::Type>());
}

}  // namespace inorder
