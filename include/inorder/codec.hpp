// inorder/codec.hpp: how a task's arguments and results cross the process boundary.
//
// Contract: for every type T with Encodable<T>, decode<T> of the bytes encode wrote
// returns a value equal to the one encoded, in any process forked from the same
// binary. Trivially copyable types travel as their raw bytes (one memcpy); the
// standard containers, optional, variant, pair and tuple travel element by element;
// any other type needs an inorder::codec<T> specialization, and using one without it
// is a compile error whose message says what to do. Decoding is bounds-checked: short
// input, trailing bytes, an impossible length or a bad variant index throw
// inorder::DecodeError, and no length is trusted before the bytes behind it exist.
//
// Not promised: a portable format (lengths are native uint64, layouts are the
// compiler's; both ends must be the same binary), and validation of the bytes of a
// trivially copyable type (they are trusted as they are). Every function here is
// plain code without shared state: any thread of the parent or of a worker may call it.
// docs/codec.md describes the formats and the hook.
#pragma once

#include <algorithm>
#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <new>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

#include "inorder/errors.hpp"

namespace inorder {
namespace detail {

// Throws DecodeError("inorder: " + the parts). Appends piece by piece: GCC 12 at -O3
// reports a false -Wrestrict on `"literal" + std::string`.
template <class... Parts>
[[noreturn]] void throw_decode_error(const Parts&... parts) {
  std::string message = "inorder: ";
  ((message += parts), ...);
  throw DecodeError(message);
}

}  // namespace detail

/// Sink for encoded bytes. Writer() only counts (the size pass); Writer(dst) copies
/// to dst without bounds checks: the caller sized dst with a counting pass first.
/// Any thread; never blocks; never throws.
class Writer {
 public:
  explicit Writer(std::byte* dst = nullptr) noexcept : dst_(dst) {}

  /// Appends n bytes from src (or only counts them when counting).
  void write_bytes(const void* src, std::size_t n) noexcept {
    if (dst_ != nullptr && n != 0) std::memcpy(dst_ + size_, src, n);
    size_ += n;
  }

  /// Bytes written (or counted) so far.
  [[nodiscard]] std::size_t size() const noexcept { return size_; }

 private:
  std::byte* dst_;        // nullptr: counting only; otherwise start of the caller's buffer
  std::size_t size_ = 0;  // bytes appended so far; the next write goes to dst_ + size_
};

/// Bounds-checked source over [src, src + n). Any thread; never blocks.
class Reader {
 public:
  Reader(const std::byte* src, std::size_t n) noexcept : pos_(src), end_(src + n) {}

  /// Copies the next n bytes to dst. Throws DecodeError if fewer than n remain.
  void read_bytes(void* dst, std::size_t n) {
    const std::byte* p = take(n);
    if (n != 0) std::memcpy(dst, p, n);
  }

  /// Returns a pointer to the next n bytes (not aligned) and skips them.
  /// Throws DecodeError if fewer than n remain.
  const std::byte* take(std::size_t n) {
    if (n > remaining()) {
      detail::throw_decode_error("truncated input: needed ", std::to_string(n), " bytes, ",
                                 std::to_string(remaining()), " remain");
    }
    const std::byte* p = pos_;
    pos_ += n;
    return p;
  }

  /// Bytes not yet read.
  [[nodiscard]] std::size_t remaining() const noexcept {
    return static_cast<std::size_t>(end_ - pos_);
  }

 private:
  const std::byte* pos_;  // next unread byte; pos_ <= end_
  const std::byte* end_;  // one past the last byte of the input
};

/// The user hook. Specialize it, before the first use, for a type that is not
/// trivially copyable and not a supported standard type:
///   template <> struct inorder::codec<MyType> {
///     static void encode(inorder::Writer& w, const MyType& v);
///     static MyType decode(inorder::Reader& r);
///   };
/// encode must write the same bytes on the counting pass and on the writing pass.
/// A specialization wins over every built-in rule, also for trivially copyable types.
template <class T>
struct codec;

template <class T>
void encode(Writer& w, const T& value);
template <class T>
[[nodiscard]] T decode(Reader& r);

namespace detail {

template <class T>
concept HasUserCodec = requires(Writer& w, Reader& r, const T& v) {
  codec<T>::encode(w, v);
  { codec<T>::decode(r) } -> std::same_as<T>;
};

template <class T>
concept HasBrokenUserCodec = !HasUserCodec<T> && requires {
  sizeof(codec<T>);
};

// Types that are trivially copyable but only point into this process's memory.
template <class T>
inline constexpr bool kIsPointerView = false;
template <class C, class Tr>
inline constexpr bool kIsPointerView<std::basic_string_view<C, Tr>> = true;
template <class T, std::size_t N>
inline constexpr bool kIsPointerView<std::span<T, N>> = true;

// Whether C is Tmpl<...> for one of the given class templates.
template <class C, template <class...> class Tmpl>
inline constexpr bool kIsSpecializationOf = false;
template <template <class...> class Tmpl, class... Args>
inline constexpr bool kIsSpecializationOf<Tmpl<Args...>, Tmpl> = true;

template <class C, template <class...> class... Tmpls>
concept SpecializationOfAny = (kIsSpecializationOf<C, Tmpls> || ...);

// StdCodec<T>: the format of one supported standard type. kKnown says the template is
// recognised; supported() says its elements are encodable too.
template <class T>
struct StdCodec {
  static constexpr bool kKnown = false;
};

// How a type travels (kUser, kMemcpy, kStd) or why it cannot. kStdBadElement: a standard
// type whose element cannot travel; its encode reports the element's own error.
enum class Path { kUser, kMemcpy, kStd, kStdBadElement, kPointerView, kArray, kBadHook, kNone };

// The precedence, in one place: user hook, then the rejections, then memcpy, then the
// standard formats. A standard type whose element cannot travel is never memcpy'd
// (std::optional<std::string_view> is trivially copyable, but still a dangling pointer).
template <class T>
consteval Path path_of() {
  constexpr bool kMemcpyable = std::is_trivially_copyable_v<T> && std::is_move_constructible_v<T>;
  if constexpr (HasUserCodec<T>) {
    return Path::kUser;
  } else if constexpr (HasBrokenUserCodec<T>) {
    return Path::kBadHook;
  } else if constexpr (!std::is_object_v<T> || std::is_array_v<T>) {
    return std::is_array_v<T> ? Path::kArray : Path::kNone;
  } else if constexpr (kIsPointerView<T>) {
    return Path::kPointerView;
  } else if constexpr (StdCodec<T>::kKnown) {
    if constexpr (StdCodec<T>::supported()) return kMemcpyable ? Path::kMemcpy : Path::kStd;
    return Path::kStdBadElement;
  } else {
    return kMemcpyable ? Path::kMemcpy : Path::kNone;
  }
}

constexpr bool travels(Path p) { return p == Path::kUser || p == Path::kMemcpy || p == Path::kStd; }

template <class T>
inline constexpr Path kPath = path_of<std::remove_cv_t<T>>();

}  // namespace detail

/// True iff encode, decode and encoded_size accept T. Checking it never fails to compile.
template <class T>
concept Encodable = detail::travels(detail::kPath<T>);

namespace detail {

// Fires, with one readable message, when encode/decode/encoded_size is used with a
// type that cannot travel. A standard type with a bad element passes here; the
// message then fires for the element itself, which names the real culprit.
template <class T>
constexpr void require_encodable() {
  constexpr Path p = kPath<T>;
  static_assert(p != Path::kPointerView,
                "inorder: std::string_view / std::span holds a pointer into this process's "
                "memory; send std::string / std::vector instead");
  static_assert(p != Path::kArray,
                "inorder: a built-in array cannot be returned by value; send std::array<T, N> "
                "instead");
  static_assert(p != Path::kBadHook,
                "inorder: inorder::codec<T> is specialized but unusable: it must declare "
                "static void encode(inorder::Writer&, const T&) and static T "
                "decode(inorder::Reader&)");
  static_assert(p != Path::kNone,
                "inorder: this type cannot cross a process boundary: it is neither trivially "
                "copyable nor a supported standard type. Specialize inorder::codec<T> with "
                "static void encode(inorder::Writer&, const T&) and static T "
                "decode(inorder::Reader&); see docs/codec.md");
}

// require_encodable<T>() for the entry points that take a T (ParallelQueue<R>,
// put's arguments): the message the user reads is the one for T's own problem.
// A standard type with a bad element passes require_encodable, so its encode is
// instantiated too, and the element's message fires there. Always true: it
// only fails to compile.
template <class T>
consteval bool explain_unencodable() {
  require_encodable<T>();
  if constexpr (kPath<T> == Path::kStdBadElement) {
    [[maybe_unused]] void (*const instantiate)(Writer&, const T&) = &inorder::encode<T>;
  }
  return true;
}

// Fewest bytes one value of T can encode to, at least 1; bounds element counts on decode.
template <class T>
constexpr std::size_t min_size() {
  using U = std::remove_cv_t<T>;
  if constexpr (kPath<U> == Path::kMemcpy) {
    return sizeof(U);
  } else if constexpr (kPath<U> == Path::kStd) {
    return std::max<std::size_t>(1, StdCodec<U>::min_size());
  } else {
    return 1;
  }
}

inline void write_u64(Writer& w, std::uint64_t v) noexcept { w.write_bytes(&v, sizeof v); }

inline std::uint64_t read_u64(Reader& r) {
  std::uint64_t v;
  r.read_bytes(&v, sizeof v);
  return v;
}

// Reads an element count and proves the input can hold that many elements of at
// least elem_min bytes each, so no reserve/resize is ever sized by a corrupt length.
inline std::size_t read_count(Reader& r, std::size_t elem_min) {
  const std::uint64_t n = read_u64(r);
  if (n > r.remaining() / elem_min) {
    throw_decode_error("corrupt input: a length of ", std::to_string(n), " elements of at least ",
                       std::to_string(elem_min), " bytes each, but only ",
                       std::to_string(r.remaining()), " bytes remain");
  }
  return static_cast<std::size_t>(n);
}

// std::basic_string: count, then the characters in one copy.
template <class C, class Tr, class A>
struct StdCodec<std::basic_string<C, Tr, A>> {
  using S = std::basic_string<C, Tr, A>;
  static constexpr bool kKnown = true;
  static constexpr bool supported() { return std::is_trivially_copyable_v<C>; }
  static constexpr std::size_t min_size() { return sizeof(std::uint64_t); }
  static void encode(Writer& w, const S& s) {
    write_u64(w, s.size());
    w.write_bytes(s.data(), s.size() * sizeof(C));
  }
  static S decode(Reader& r) {
    S s;
    s.resize(read_count(r, sizeof(C)));
    r.read_bytes(s.data(), s.size() * sizeof(C));
    return s;
  }
};

enum class Shape { kSequence, kSet, kMap };

// Containers: count, then each element (a map's key, then its value) in iteration order.
// A std::vector of memcpy-able elements is one bulk copy instead.
template <class C, Shape kShape>
struct RangeCodec {
  static constexpr bool kKnown = true;
  static constexpr bool supported() {
    if constexpr (kShape == Shape::kMap) {
      return Encodable<typename C::key_type> && Encodable<typename C::mapped_type>;
    } else {
      return Encodable<typename C::value_type>;
    }
  }
  static constexpr std::size_t min_size() { return sizeof(std::uint64_t); }
  static constexpr std::size_t elem_min() {
    if constexpr (kShape == Shape::kMap) {
      return detail::min_size<typename C::key_type>() + detail::min_size<typename C::mapped_type>();
    } else {
      return detail::min_size<typename C::value_type>();
    }
  }
  static constexpr bool kBulk = kIsSpecializationOf<C, std::vector> &&
                                !std::is_same_v<typename C::value_type, bool> &&
                                kPath<typename C::value_type> == Path::kMemcpy &&
                                std::is_default_constructible_v<typename C::value_type>;

  static void encode(Writer& w, const C& c) {
    write_u64(w, c.size());
    if constexpr (kBulk) {
      w.write_bytes(c.data(), c.size() * sizeof(typename C::value_type));
    } else {
      for (const auto& e : c) {
        if constexpr (kShape == Shape::kMap) {
          inorder::encode<typename C::key_type>(w, e.first);
          inorder::encode<typename C::mapped_type>(w, e.second);
        } else {
          inorder::encode<typename C::value_type>(w, e);
        }
      }
    }
  }

  static C decode(Reader& r) {
    const std::size_t n = read_count(r, elem_min());
    C c;
    if constexpr (kBulk) {
      c.resize(n);
      r.read_bytes(c.data(), n * sizeof(typename C::value_type));
    } else {
      if constexpr (requires { c.reserve(n); }) c.reserve(n);
      for (std::size_t i = 0; i < n; ++i) {
        if constexpr (kShape == Shape::kMap) {
          auto key = inorder::decode<typename C::key_type>(r);  // key first, then value
          auto value = inorder::decode<typename C::mapped_type>(r);
          c.emplace_hint(c.end(), std::move(key), std::move(value));
        } else if constexpr (kShape == Shape::kSet) {
          c.emplace_hint(c.end(), inorder::decode<typename C::value_type>(r));
        } else {
          c.emplace_back(inorder::decode<typename C::value_type>(r));
        }
      }
    }
    return c;
  }
};

template <SpecializationOfAny<std::vector, std::deque, std::list> C>
struct StdCodec<C> : RangeCodec<C, Shape::kSequence> {};
template <
    SpecializationOfAny<std::set, std::multiset, std::unordered_set, std::unordered_multiset> C>
struct StdCodec<C> : RangeCodec<C, Shape::kSet> {};
template <
    SpecializationOfAny<std::map, std::multimap, std::unordered_map, std::unordered_multimap> C>
struct StdCodec<C> : RangeCodec<C, Shape::kMap> {};

// std::array (when not memcpy'd): the N elements, no count.
template <class T, std::size_t N>
struct StdCodec<std::array<T, N>> {
  using Arr = std::array<T, N>;
  static constexpr bool kKnown = true;
  static constexpr bool supported() { return Encodable<T>; }
  static constexpr std::size_t min_size() { return N * detail::min_size<T>(); }
  static void encode(Writer& w, const Arr& a) {
    for (const T& e : a) inorder::encode<T>(w, e);
  }
  static Arr decode(Reader& r) {
    if constexpr (std::is_default_constructible_v<T>) {
      Arr a;
      for (T& e : a) e = inorder::decode<T>(r);
      return a;
    } else {
      return decode_each(r, std::make_index_sequence<N>{});
    }
  }
  template <std::size_t... I>
  static Arr decode_each(Reader& r, std::index_sequence<I...>) {
    return Arr{{((void)I, inorder::decode<T>(r))...}};  // braced: decoded in order
  }
};

// std::optional: one byte, 0 (empty) or 1 (engaged), then the value if engaged.
template <class T>
struct StdCodec<std::optional<T>> {
  static constexpr bool kKnown = true;
  static constexpr bool supported() { return Encodable<T>; }
  static constexpr std::size_t min_size() { return 1; }
  static void encode(Writer& w, const std::optional<T>& o) {
    const std::uint8_t engaged = o.has_value() ? 1 : 0;
    w.write_bytes(&engaged, 1);
    if (o) inorder::encode<T>(w, *o);
  }
  static std::optional<T> decode(Reader& r) {
    std::uint8_t engaged;
    r.read_bytes(&engaged, 1);
    if (engaged > 1) throw_decode_error("corrupt input: std::optional flag is not 0 or 1");
    if (engaged == 0) return std::nullopt;
    return std::optional<T>(std::in_place, inorder::decode<T>(r));
  }
};

// std::variant: the index as uint64, then the active alternative. Encoding a valueless
// variant throws std::bad_variant_access; decoding an index out of range throws DecodeError.
template <class... Ts>
struct StdCodec<std::variant<Ts...>> {
  using V = std::variant<Ts...>;
  static constexpr bool kKnown = true;
  static constexpr bool supported() { return (Encodable<Ts> && ...); }
  static constexpr std::size_t min_size() {
    return sizeof(std::uint64_t) + std::min({detail::min_size<Ts>()...});
  }
  static void encode(Writer& w, const V& v) {
    if (v.valueless_by_exception()) throw std::bad_variant_access();
    write_u64(w, v.index());
    std::visit([&w](const auto& alt) { inorder::encode(w, alt); }, v);
  }
  static V decode(Reader& r) {
    const std::uint64_t index = read_u64(r);
    if (index >= sizeof...(Ts)) {
      throw_decode_error("corrupt input: std::variant index ", std::to_string(index), " but only ",
                         std::to_string(sizeof...(Ts)), " alternatives");
    }
    return decode_alternative(r, static_cast<std::size_t>(index), std::index_sequence_for<Ts...>{});
  }
  // One decoder per alternative in a table, so the runtime index picks one in O(1).
  template <std::size_t I>
  static V decode_as(Reader& r) {
    return V(std::in_place_index<I>, inorder::decode<std::variant_alternative_t<I, V>>(r));
  }
  template <std::size_t... I>
  static V decode_alternative(Reader& r, std::size_t index, std::index_sequence<I...>) {
    static constexpr V (*kDecoders[])(Reader&) = {&decode_as<I>...};
    return kDecoders[index](r);
  }
};

// std::pair and std::tuple: the elements in order, no count.
template <class A, class B>
struct StdCodec<std::pair<A, B>> {
  static constexpr bool kKnown = true;
  static constexpr bool supported() { return Encodable<A> && Encodable<B>; }
  static constexpr std::size_t min_size() { return detail::min_size<A>() + detail::min_size<B>(); }
  static void encode(Writer& w, const std::pair<A, B>& p) {
    inorder::encode<A>(w, p.first);
    inorder::encode<B>(w, p.second);
  }
  static std::pair<A, B> decode(Reader& r) {
    return std::pair<A, B>{inorder::decode<A>(r), inorder::decode<B>(r)};  // braced: in order
  }
};

template <class... Ts>
struct StdCodec<std::tuple<Ts...>> {
  static constexpr bool kKnown = true;
  static constexpr bool supported() { return (Encodable<Ts> && ...); }
  static constexpr std::size_t min_size() {
    return (std::size_t{0} + ... + detail::min_size<Ts>());
  }
  static void encode(Writer& w, const std::tuple<Ts...>& t) {
    std::apply([&w](const Ts&... e) { (inorder::encode<Ts>(w, e), ...); }, t);
  }
  static std::tuple<Ts...> decode(Reader& r) {
    return std::tuple<Ts...>{inorder::decode<Ts>(r)...};  // braced: decoded in order
  }
};

}  // namespace detail

/// Appends the encoding of value to w. Any thread. Throws only what a user codec
/// throws (and std::bad_variant_access for a valueless variant).
template <class T>
void encode(Writer& w, const T& value) {
  using U = std::remove_cv_t<T>;
  detail::require_encodable<U>();
  constexpr detail::Path p = detail::kPath<U>;
  if constexpr (p == detail::Path::kUser) {
    codec<U>::encode(w, value);
  } else if constexpr (p == detail::Path::kMemcpy) {
    w.write_bytes(std::addressof(value), sizeof(U));
  } else if constexpr (p == detail::Path::kStd || p == detail::Path::kStdBadElement) {
    detail::StdCodec<U>::encode(w, value);
  }
}

/// Reads one T from r. Any thread. Throws DecodeError when the bytes cannot hold a T
/// (too short, impossible length, bad variant index or optional flag), std::bad_alloc
/// when a plausible length does not fit in memory, and whatever a user codec throws.
template <class T>
T decode(Reader& r) {
  using U = std::remove_cv_t<T>;
  detail::require_encodable<U>();
  constexpr detail::Path p = detail::kPath<U>;
  if constexpr (p == detail::Path::kUser) {
    return codec<U>::decode(r);
  } else if constexpr (p == detail::Path::kMemcpy && std::is_trivially_default_constructible_v<U>) {
    U value{};  // zeroed (the store is dead and elided), filled in place, returned by NRVO
    r.read_bytes(std::addressof(value), sizeof(U));
    return value;
  } else if constexpr (p == detail::Path::kMemcpy) {
    // Works without a default constructor: copying the bytes into suitably aligned
    // storage implicitly creates the U there (C++20 implicit object creation).
    alignas(U) std::byte storage[sizeof(U)];
    r.read_bytes(storage, sizeof(U));
    return static_cast<U&&>(*std::launder(reinterpret_cast<U*>(storage)));
  } else if constexpr (p == detail::Path::kStd || p == detail::Path::kStdBadElement) {
    return detail::StdCodec<U>::decode(r);
  } else {
    std::abort();  // unreachable: require_encodable has already failed to compile
  }
}

/// Number of bytes encode(value) writes. For a memcpy'd type it is the constant
/// sizeof(T); otherwise it runs encode on a counting Writer. Any thread; throws as encode.
template <class T>
[[nodiscard]] std::size_t encoded_size(const T& value) {
  detail::require_encodable<std::remove_cv_t<T>>();
  if constexpr (detail::kPath<T> == detail::Path::kMemcpy) {
    return sizeof(T);
  } else {
    Writer counter;
    inorder::encode(counter, value);
    return counter.size();
  }
}

/// encode into a fresh vector of exactly encoded_size(value) bytes. Any thread;
/// throws std::bad_alloc and what encode throws.
template <class T>
[[nodiscard]] std::vector<std::byte> encode_to_vector(const T& value) {
  std::vector<std::byte> out(inorder::encoded_size(value));
  Writer w(out.data());
  inorder::encode(w, value);
  return out;
}

/// Decodes one T that must fill [p, p + n) exactly. Any thread. Throws as decode, and
/// DecodeError when bytes are left over.
template <class T>
[[nodiscard]] T decode_from(const std::byte* p, std::size_t n) {
  Reader r(p, n);
  T value = inorder::decode<T>(r);
  if (r.remaining() != 0) {
    detail::throw_decode_error("corrupt input: ", std::to_string(r.remaining()),
                               " trailing bytes after the decoded value");
  }
  return value;
}

}  // namespace inorder
