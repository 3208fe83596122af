// src/share/share.cpp: the arena behind inorder::Share.
//
// Layout. One anonymous MAP_SHARED | MAP_NORESERVE mapping: an ArenaHeader (the
// robust mutex, the allocator's state, the name list, the undo journal), then
// the heap, a range of max_bytes handed out by a bump pointer in power-of-two
// blocks. A block is [u64 size class][u64 length of its data][data...]; freed
// blocks go on one free list per size class (their length word links them).
// Offsets, never pointers, are stored in the arena (every process maps it at
// the same address, but offsets keep the format independent of that).
//
// Crash consistency. Every word of committed state (allocator, names, value
// slots, list and map headers, map tables) is changed only through jstore(),
// which first appends (offset, old value) to the undo journal and then stores.
// Data is written only into blocks that no committed state reaches: fresh
// blocks, or slots past a list's size. A block freed by an operation goes on a
// pending list and becomes reusable only after the operation committed, so an
// undo never finds a block it restores overwritten. Committing is one store:
// journal_len = 0. A process that dies holding the mutex leaves journal_len
// entries; the next locker gets EOWNERDEAD, restores them newest first (an undo
// that is itself interrupted is simply repeated), and marks the mutex
// consistent. Number atomics are outside all of this: they are never
// journaled and never rolled back.
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <new>
#include <stdexcept>
#include <string>
#include <system_error>

#include "inorder/detail/config.hpp"
#include "inorder/share.hpp"
#include "os/os.hpp"

namespace inorder::detail {
namespace {

constexpr std::uint64_t kMagic =
    0x7265'6853'6472'6f6e;  // marks an arena in a core dump; never trusted
constexpr std::size_t kBlockHeader = kShareBlockHeader;  // [size class][data length]
constexpr unsigned kMinClass = 5;                        // smallest block: 32 bytes
constexpr unsigned kClasses = 64;
/// Undo records one transaction may make. A value set costs about 5, a list
/// append about 3 (plus 4 when its index grows), a map insertion about 6.
constexpr std::size_t kJournalEntries = 16384;
/// Freed blocks made reusable per committed batch after an operation.
constexpr unsigned kDrainBatch = 4096;
/// Tombstone in a map table slot (no block lives at offset 1).
constexpr std::uint64_t kTombstone = 1;

struct JournalEntry {
  std::uint64_t off;  ///< arena offset of the word changed
  std::uint64_t old;  ///< its value before the change
};

struct alignas(kCacheLine) ArenaHeader {
  // Written once at construction, read-only afterwards.
  std::uint64_t magic;
  std::uint64_t id;
  std::uint64_t heap_begin;  ///< offset of the first block
  std::uint64_t heap_end;    ///< heap_begin + max_bytes: no block reaches past it
  /// Robust, process-shared. Guards every field below and every value, list,
  /// map and log of the Share.
  pthread_mutex_t mutex;
  // Committed state: changed only under the mutex, and only through jstore().
  std::uint64_t top;                   ///< next never-used offset; heap_begin <= top <= heap_end
  std::uint64_t names;                 ///< first NameEntry block, 0 when none
  std::uint64_t pending;               ///< blocks freed by uncommitted or undrained work
  std::uint64_t free_heads[kClasses];  ///< reusable blocks per size class
  /// Undo records in use. The release store that appends a record pairs with
  /// the recovering locker's acquire of the mutex; 0 means "all committed".
  std::atomic<std::uint64_t> journal_len;
  JournalEntry journal[kJournalEntries];
};

static_assert(std::is_trivially_destructible_v<ArenaHeader>,
              "the arena header lives in shared memory and is never destroyed");
static_assert(std::atomic<std::uint64_t>::is_always_lock_free,
              "journal_len must be lock-free: an emulated atomic is not shared across processes");
static_assert(kBlockHeader % 16 == 0 && (std::size_t{1} << kMinClass) > kBlockHeader,
              "block data must stay 16-byte aligned and every block must hold data");

struct NameEntry {
  std::uint64_t next;  ///< next NameEntry block, 0 at the end
  std::uint32_t kind;
  std::uint32_t name_len;
  std::uint64_t type_hash;
  std::uint64_t type_size;
  std::uint64_t obj;  ///< the named object's block
  std::uint64_t type_name_len;
  // then name_len bytes of name, then type_name_len bytes of mangled type name
};

struct ValueObj {
  std::uint64_t block;  ///< the encoded value
};
struct ListObj {
  std::uint64_t size;   ///< elements 0..size-1 are committed
  std::uint64_t cap;    ///< slots in the index block
  std::uint64_t index;  ///< block of cap u64 element-block offsets (0 while cap == 0)
};
struct MapSlot {
  std::uint64_t hash;
  std::uint64_t entry;  ///< 0 empty, kTombstone erased, else [u64 klen][key][value] block
};
struct MapObj {
  std::uint64_t count;  ///< live entries
  std::uint64_t used;   ///< live entries + tombstones
  std::uint64_t slots;  ///< table size, a power of two (0 before the first insertion)
  std::uint64_t table;  ///< block of `slots` MapSlots
};

// ---- the process-local registry of arenas this process has mapped ----

constexpr unsigned kMaxLive = 64;
struct LiveEntry {
  std::atomic<std::uint64_t> id{0};  ///< 0: free slot
  std::atomic<std::byte*> base{nullptr};
};
LiveEntry g_live[kMaxLive];
std::atomic<unsigned> g_live_hi{0};  // slots [0, hi) may be in use
std::atomic<std::uint32_t> g_next_serial{0};

bool is_live(ShareRef ref) noexcept {
  const unsigned hi = g_live_hi.load(std::memory_order_acquire);
  for (unsigned i = 0; i < hi; ++i) {
    if (g_live[i].id.load(std::memory_order_acquire) == ref.id &&
        g_live[i].base.load(std::memory_order_relaxed) == ref.base)
      return ref.id != 0;
  }
  return false;
}

void register_live(ShareRef ref) {
  for (unsigned i = 0; i < kMaxLive; ++i) {
    std::uint64_t expected = 0;
    // The slot is claimed before its base is written: until then is_live()
    // reports this Share as absent, and no handle of it exists yet anyway.
    if (g_live[i].id.compare_exchange_strong(expected, ref.id, std::memory_order_acq_rel)) {
      g_live[i].base.store(ref.base, std::memory_order_release);
      unsigned hi = g_live_hi.load(std::memory_order_relaxed);
      while (hi < i + 1 && !g_live_hi.compare_exchange_weak(hi, i + 1)) {
      }
      return;
    }
  }
  throw std::length_error("inorder: more than 64 Shares alive in one process");
}

void unregister_live(ShareRef ref) noexcept {
  for (unsigned i = 0; i < kMaxLive; ++i) {
    std::uint64_t expected = ref.id;
    if (g_live[i].base.load(std::memory_order_relaxed) == ref.base &&
        g_live[i].id.compare_exchange_strong(expected, 0, std::memory_order_acq_rel))
      return;
  }
}

// ---- which arenas this thread holds the lock of ----

constexpr unsigned kMaxHeld = 16;
struct Held {
  std::uint64_t id = 0;
  unsigned depth = 0;
};
thread_local Held t_held[kMaxHeld];

Held* held_slot(std::uint64_t id) noexcept {
  for (Held& h : t_held)
    if (h.id == id && h.depth > 0) return &h;
  return nullptr;
}

// ---- arena access ----

ArenaHeader& hdr(ShareRef ref) noexcept { return *reinterpret_cast<ArenaHeader*>(ref.base); }

template <class T>
T& at(ShareRef ref, std::uint64_t off) noexcept {
  return *reinterpret_cast<T*>(ref.base + off);
}

template <class T>
T& obj_at(ShareRef ref, std::uint64_t block) noexcept {
  return *reinterpret_cast<T*>(share_data(ref, block));
}

std::uint64_t& block_class(ShareRef ref, std::uint64_t block) noexcept {
  return at<std::uint64_t>(ref, block);
}
std::uint64_t& block_len(ShareRef ref, std::uint64_t block) noexcept {
  return at<std::uint64_t>(ref, block + 8);
}

/// The journaled store: records (offset, old value), then changes the word.
void jstore(ShareRef ref, std::uint64_t& word, std::uint64_t value) {
  ArenaHeader& h = hdr(ref);
  const std::uint64_t n = h.journal_len.load(std::memory_order_relaxed);
  if (n == kJournalEntries) {
    throw ShareFull("inorder: one Share transaction changed more than " +
                    std::to_string(kJournalEntries) +
                    " words of shared state (its undo journal is full); split it into smaller "
                    "transactions");
  }
  h.journal[n].off = static_cast<std::uint64_t>(reinterpret_cast<std::byte*>(&word) - ref.base);
  h.journal[n].old = word;
  // The record is complete before the length covers it, and the length covers
  // it before the word changes: a process killed between any two of these
  // three stores leaves a journal that restores the word correctly.
  h.journal_len.store(n + 1, std::memory_order_release);
  std::atomic_ref<std::uint64_t>(word).store(value, std::memory_order_release);
}

/// Restores every word journaled after `mark`, newest first.
void rollback(ShareRef ref, std::uint64_t mark) noexcept {
  ArenaHeader& h = hdr(ref);
  std::uint64_t n = h.journal_len.load(std::memory_order_acquire);
  while (n > mark) {
    --n;
    std::atomic_ref<std::uint64_t>(at<std::uint64_t>(ref, h.journal[n].off))
        .store(h.journal[n].old, std::memory_order_release);
  }
  h.journal_len.store(mark, std::memory_order_release);
}

void commit(ShareRef ref) noexcept { hdr(ref).journal_len.store(0, std::memory_order_release); }

/// Moves pending blocks to their free lists, a committed batch at a time.
void drain_pending(ShareRef ref) noexcept {
  ArenaHeader& h = hdr(ref);
  while (h.pending != 0) {
    for (unsigned i = 0; i < kDrainBatch && h.pending != 0; ++i) {
      const std::uint64_t b = h.pending;
      const std::uint64_t k = block_class(ref, b);
      // Never throws: the journal is empty at the start of a batch, and a
      // batch makes 3 records per block, far below kJournalEntries.
      jstore(ref, h.pending, block_len(ref, b));
      jstore(ref, block_len(ref, b), h.free_heads[k]);
      jstore(ref, h.free_heads[k], b);
    }
    commit(ref);
  }
}

void free_block(ShareRef ref, std::uint64_t block) {
  if (block == 0) return;
  ArenaHeader& h = hdr(ref);
  jstore(ref, block_len(ref, block), h.pending);
  jstore(ref, h.pending, block);
}

[[noreturn]] void throw_full(ShareRef ref, std::size_t n) {
  const ArenaHeader& h = hdr(ref);
  throw ShareFull("inorder: Share is full: a block for " + std::to_string(n) +
                  " bytes does not fit in ShareOptions::max_bytes (" +
                  std::to_string(h.heap_end - h.heap_begin) + " bytes, " +
                  std::to_string(h.top - h.heap_begin) +
                  " handed out); make the Share with a larger max_bytes");
}

void require_held(ShareRef ref) {
  if (held_slot(ref.id) == nullptr)
    throw std::logic_error("inorder: internal: Share operation without its lock");
}

const char* kind_name(std::uint32_t k) {
  switch (static_cast<ShareKind>(k)) {
    case ShareKind::kNumber:
      return "Number";
    case ShareKind::kValue:
      return "Value";
    case ShareKind::kList:
      return "List";
    case ShareKind::kMap:
      return "Map";
    case ShareKind::kLog:
      return "Log";
  }
  return "?";
}

std::uint64_t hash_bytes(ShareBlob b) noexcept {
  const std::uint64_t h = std::hash<std::string_view>{}(
      std::string_view(reinterpret_cast<const char*>(b.data), b.size));
  return h < 2 ? h + 2 : h;  // never 0 or 1, so it cannot be mistaken for a marker
}

ShareBlob entry_key(ShareRef ref, std::uint64_t entry) noexcept {
  const std::byte* p = share_data(ref, entry);
  std::uint64_t klen;
  std::memcpy(&klen, p, sizeof klen);
  return {p + sizeof klen, static_cast<std::size_t>(klen)};
}

ShareBlob entry_value(ShareRef ref, std::uint64_t entry) noexcept {
  const ShareBlob k = entry_key(ref, entry);
  const std::size_t total = static_cast<std::size_t>(block_len(ref, entry));
  return {k.data + k.size, total - sizeof(std::uint64_t) - k.size};
}

bool same(ShareBlob a, ShareBlob b) noexcept {
  return a.size == b.size && (a.size == 0 || std::memcmp(a.data, b.data, a.size) == 0);
}

/// Slot of `key` in the table, or the slot where it would go (first tombstone
/// or empty slot on its probe path). `found` says which.
MapSlot* probe(ShareRef ref, const MapObj& m, ShareBlob key, std::uint64_t hash, bool& found) {
  auto* table = reinterpret_cast<MapSlot*>(share_data(ref, m.table));
  const std::uint64_t mask = m.slots - 1;
  MapSlot* free_slot = nullptr;
  for (std::uint64_t i = hash & mask;; i = (i + 1) & mask) {
    MapSlot& s = table[i];
    if (s.entry == 0) {
      found = false;
      return free_slot != nullptr ? free_slot : &s;
    }
    if (s.entry == kTombstone) {
      if (free_slot == nullptr) free_slot = &s;
    } else if (s.hash == hash && same(entry_key(ref, s.entry), key)) {
      found = true;
      return &s;
    }
  }
}

/// Replaces the table by one of `slots` slots holding the live entries.
void rehash(ShareRef ref, MapObj& m, std::uint64_t slots) {
  const std::uint64_t block = share_alloc(ref, slots * sizeof(MapSlot));
  auto* fresh = reinterpret_cast<MapSlot*>(share_data(ref, block));
  std::memset(fresh, 0, slots * sizeof(MapSlot));  // fresh block: plain stores
  if (m.slots != 0) {
    const auto* old = reinterpret_cast<const MapSlot*>(share_data(ref, m.table));
    for (std::uint64_t i = 0; i < m.slots; ++i) {
      if (old[i].entry <= kTombstone) continue;
      for (std::uint64_t j = old[i].hash & (slots - 1);; j = (j + 1) & (slots - 1)) {
        if (fresh[j].entry == 0) {
          fresh[j] = old[i];
          break;
        }
      }
    }
  }
  const std::uint64_t old_table = m.table;
  jstore(ref, m.table, block);
  jstore(ref, m.slots, slots);
  jstore(ref, m.used, m.count);
  free_block(ref, old_table);
}

void lock_mutex(ShareRef ref) {
  ArenaHeader& h = hdr(ref);
  const int rc = pthread_mutex_lock(&h.mutex);
  if (rc == 0) return;
  if (rc == EOWNERDEAD) {
    // The previous owner died holding the lock: undo what it had not committed,
    // make its frees reusable, then declare the mutex usable again.
    rollback(ref, 0);
    drain_pending(ref);
    pthread_mutex_consistent(&h.mutex);
    return;
  }
  if (rc == ENOTRECOVERABLE)
    throw Error("inorder: the Share's mutex is not recoverable (a recovery was abandoned)");
  throw_errno(rc, "inorder: pthread_mutex_lock");
}

}  // namespace

// ---- the lock ----

void share_check(ShareRef ref) {
  if (is_live(ref)) return;
  throw ShareNotInherited(
      "inorder: this Share is not mapped in process " + std::to_string(getpid()) +
      ": the process was forked before the Share was made (make the Share before the "
      "ParallelQueue, Pool or fork() whose workers use it), or the Share was destroyed");
}

ShareLock::ShareLock(ShareRef ref) : ref_(ref), mark_(0), uncaught_(std::uncaught_exceptions()) {
  share_check(ref);
  if (Held* h = held_slot(ref.id)) {
    ++h->depth;
  } else {
    Held* slot = nullptr;
    for (Held& e : t_held)
      if (e.depth == 0) {
        slot = &e;
        break;
      }
    if (slot == nullptr)
      throw std::length_error("inorder: one thread holds the locks of more than 16 Shares");
    lock_mutex(ref);
    *slot = {ref.id, 1};
  }
  mark_ = hdr(ref).journal_len.load(std::memory_order_relaxed);
}

ShareLock::~ShareLock() {
  Held* h = held_slot(ref_.id);
  if (std::uncaught_exceptions() > uncaught_) rollback(ref_, mark_);
  if (--h->depth > 0) return;
  h->id = 0;
  commit(ref_);
  drain_pending(ref_);
  pthread_mutex_unlock(&hdr(ref_).mutex);
}

// ---- allocation and names ----

std::uint64_t share_alloc(ShareRef ref, std::size_t n) {
  require_held(ref);
  ArenaHeader& h = hdr(ref);
  if (n > h.heap_end - h.heap_begin) throw_full(ref, n);
  const unsigned k = std::max<unsigned>(kMinClass, std::bit_width(n + kBlockHeader - 1));
  if (const std::uint64_t b = h.free_heads[k]; b != 0) {
    jstore(ref, h.free_heads[k], block_len(ref, b));
    jstore(ref, block_len(ref, b), n);
    return b;
  }
  const std::uint64_t size = std::uint64_t{1} << k;
  if (size > h.heap_end - h.top) throw_full(ref, n);
  const std::uint64_t b = h.top;
  jstore(ref, h.top, h.top + size);
  block_class(ref, b) = k;  // past the old top: no committed state reaches it
  block_len(ref, b) = n;
  return b;
}

std::uint64_t share_lookup(ShareRef ref, std::string_view name, ShareKind kind,
                           const ShareType& type) {
  require_held(ref);
  for (std::uint64_t e = hdr(ref).names; e != 0;) {
    const auto& n = obj_at<NameEntry>(ref, e);
    const char* stored = reinterpret_cast<const char*>(&n + 1);
    if (std::string_view(stored, n.name_len) == name) {
      if (n.kind != static_cast<std::uint32_t>(kind) || n.type_hash != type.hash ||
          n.type_size != type.size) {
        const std::string had(stored + n.name_len, n.type_name_len);
        throw ShareTypeMismatch("inorder: Share name '" + std::string(name) + "' is a " +
                                kind_name(n.kind) + " of " + demangle(had.c_str()) +
                                ", opened as a " + kind_name(static_cast<std::uint32_t>(kind)) +
                                " of " + demangle(type.name));
      }
      return n.obj;
    }
    e = n.next;
  }
  return 0;
}

void share_bind(ShareRef ref, std::string_view name, ShareKind kind, const ShareType& type,
                std::uint64_t obj) {
  require_held(ref);
  if (name.size() > 0xFFFF'FFFFu) throw std::length_error("inorder: Share name too long");
  const std::size_t tlen = std::strlen(type.name);
  const std::uint64_t e = share_alloc(ref, sizeof(NameEntry) + name.size() + tlen);
  auto& n = obj_at<NameEntry>(ref, e);
  n.next = hdr(ref).names;
  n.kind = static_cast<std::uint32_t>(kind);
  n.name_len = static_cast<std::uint32_t>(name.size());
  n.type_hash = type.hash;
  n.type_size = type.size;
  n.obj = obj;
  n.type_name_len = tlen;
  char* text = reinterpret_cast<char*>(&n + 1);
  std::memcpy(text, name.data(), name.size());
  std::memcpy(text + name.size(), type.name, tlen);
  jstore(ref, hdr(ref).names, e);
}

// ---- values ----

std::uint64_t share_make_value(ShareRef ref, std::uint64_t block) {
  const std::uint64_t obj = share_alloc(ref, sizeof(ValueObj));
  obj_at<ValueObj>(ref, obj).block = block;
  return obj;
}

ShareBlob share_value_get(ShareRef ref, std::uint64_t obj) {
  const std::uint64_t b = obj_at<ValueObj>(ref, obj).block;
  return {share_data(ref, b), static_cast<std::size_t>(block_len(ref, b))};
}

void share_value_set(ShareRef ref, std::uint64_t obj, std::uint64_t block) {
  auto& v = obj_at<ValueObj>(ref, obj);
  const std::uint64_t old = v.block;
  jstore(ref, v.block, block);
  free_block(ref, old);
}

// ---- containers ----

std::uint64_t share_make_container(ShareRef ref, ShareKind kind) {
  if (kind == ShareKind::kMap) {
    const std::uint64_t obj = share_alloc(ref, sizeof(MapObj));
    obj_at<MapObj>(ref, obj) = MapObj{0, 0, 0, 0};
    return obj;
  }
  const std::uint64_t obj = share_alloc(ref, sizeof(ListObj));
  obj_at<ListObj>(ref, obj) = ListObj{0, 0, 0};
  return obj;
}

std::size_t share_list_size(ShareRef ref, std::uint64_t obj) {
  return static_cast<std::size_t>(obj_at<ListObj>(ref, obj).size);
}

void share_list_push(ShareRef ref, std::uint64_t obj, std::uint64_t block) {
  auto& l = obj_at<ListObj>(ref, obj);
  if (l.size == l.cap) {
    const std::uint64_t cap = std::max<std::uint64_t>(8, l.cap * 2);
    const std::uint64_t index = share_alloc(ref, cap * sizeof(std::uint64_t));
    if (l.size != 0)
      std::memcpy(share_data(ref, index), share_data(ref, l.index), l.size * sizeof(std::uint64_t));
    const std::uint64_t old = l.index;
    jstore(ref, l.index, index);
    jstore(ref, l.cap, cap);
    free_block(ref, old);
  }
  // Slot `size` is past every committed element: a plain store.
  reinterpret_cast<std::uint64_t*>(share_data(ref, l.index))[l.size] = block;
  jstore(ref, l.size, l.size + 1);
}

ShareBlob share_list_at(ShareRef ref, std::uint64_t obj, std::size_t i) {
  const auto& l = obj_at<ListObj>(ref, obj);
  if (i >= l.size) {
    throw std::out_of_range("inorder: Share list index " + std::to_string(i) + " >= size " +
                            std::to_string(l.size));
  }
  const std::uint64_t b = reinterpret_cast<const std::uint64_t*>(share_data(ref, l.index))[i];
  return {share_data(ref, b), static_cast<std::size_t>(block_len(ref, b))};
}

std::size_t share_map_size(ShareRef ref, std::uint64_t obj) {
  return static_cast<std::size_t>(obj_at<MapObj>(ref, obj).count);
}

bool share_map_put(ShareRef ref, std::uint64_t obj, std::uint64_t block) {
  auto& m = obj_at<MapObj>(ref, obj);
  // At most 3/4 of the slots live or tombstoned, so a probe always ends.
  if ((m.used + 1) * 4 > m.slots * 3)
    rehash(ref, m, std::max<std::uint64_t>(16, std::bit_ceil((m.count + 1) * 2)));
  const ShareBlob key = entry_key(ref, block);
  const std::uint64_t hash = hash_bytes(key);
  bool found = false;
  MapSlot* s = probe(ref, m, key, hash, found);
  if (found) {
    const std::uint64_t old = s->entry;
    jstore(ref, s->entry, block);
    free_block(ref, old);
    return false;
  }
  if (s->entry == 0) jstore(ref, m.used, m.used + 1);
  jstore(ref, s->hash, hash);
  jstore(ref, s->entry, block);
  jstore(ref, m.count, m.count + 1);
  return true;
}

std::optional<ShareBlob> share_map_find(ShareRef ref, std::uint64_t obj, ShareBlob key) {
  const auto& m = obj_at<MapObj>(ref, obj);
  if (m.count == 0) return std::nullopt;
  bool found = false;
  const MapSlot* s = probe(ref, m, key, hash_bytes(key), found);
  if (!found) return std::nullopt;
  return entry_value(ref, s->entry);
}

bool share_map_erase(ShareRef ref, std::uint64_t obj, ShareBlob key) {
  auto& m = obj_at<MapObj>(ref, obj);
  if (m.count == 0) return false;
  bool found = false;
  MapSlot* s = probe(ref, m, key, hash_bytes(key), found);
  if (!found) return false;
  const std::uint64_t old = s->entry;
  jstore(ref, s->entry, kTombstone);
  jstore(ref, m.count, m.count - 1);
  free_block(ref, old);
  return true;
}

void share_map_visit(ShareRef ref, std::uint64_t obj, void* ctx,
                     void (*visit)(void* ctx, ShareBlob key, ShareBlob value)) {
  const auto& m = obj_at<MapObj>(ref, obj);
  if (m.slots == 0) return;
  const auto* table = reinterpret_cast<const MapSlot*>(share_data(ref, m.table));
  for (std::uint64_t i = 0; i < m.slots; ++i)
    if (table[i].entry > kTombstone)
      visit(ctx, entry_key(ref, table[i].entry), entry_value(ref, table[i].entry));
}

}  // namespace inorder::detail

namespace inorder {

using detail::ArenaHeader;

Share::Share(const Options& opts) {
  if (opts.max_bytes < 4096) {
    throw std::invalid_argument("inorder: ShareOptions::max_bytes (" +
                                std::to_string(opts.max_bytes) + ") must be >= 4096");
  }
  const std::size_t head = detail::round_up(sizeof(ArenaHeader), detail::page_size());
  if (opts.max_bytes > (std::size_t{1} << 46))
    throw std::invalid_argument("inorder: ShareOptions::max_bytes must be <= 64 TiB");
  const std::size_t len = head + opts.max_bytes;
  void* p =
      mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) detail::throw_errno("inorder: mmap");
  auto* h = new (p) ArenaHeader;  // the fresh mapping is zero: every list starts empty
  h->magic = detail::kMagic;
  h->id = (static_cast<std::uint64_t>(getpid()) << 32) |
          (detail::g_next_serial.fetch_add(1, std::memory_order_relaxed) + 1);
  h->heap_begin = head;
  h->heap_end = head + opts.max_bytes;
  h->top = head;
  pthread_mutexattr_t attr;
  int rc = pthread_mutexattr_init(&attr);
  if (rc == 0) rc = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
  if (rc == 0) rc = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
  if (rc == 0) rc = pthread_mutex_init(&h->mutex, &attr);
  pthread_mutexattr_destroy(&attr);
  if (rc != 0) {
    munmap(p, len);
    detail::throw_errno(rc, "inorder: Share mutex set-up");
  }
  ref_ = {h->id, static_cast<std::byte*>(p)};
  max_bytes_ = opts.max_bytes;
  mapped_bytes_ = len;
  try {
    detail::register_live(ref_);
  } catch (...) {
    munmap(p, len);
    throw;
  }
}

Share::~Share() {
  detail::unregister_live(ref_);
  munmap(ref_.base, mapped_bytes_);
}

Share::Log Share::log(std::string_view name) {
  return open<Log, detail::ShareKind::kLog, LogEntry>(
      name, [&] { return detail::share_make_container(ref_, detail::ShareKind::kList); });
}

bool Share::contains(std::string_view name) const {
  detail::ShareLock lock(ref_);
  for (std::uint64_t e = detail::hdr(ref_).names; e != 0;) {
    const auto& n = detail::obj_at<detail::NameEntry>(ref_, e);
    if (std::string_view(reinterpret_cast<const char*>(&n + 1), n.name_len) == name) return true;
    e = n.next;
  }
  return false;
}

std::size_t Share::used_bytes() const {
  detail::share_check(ref_);
  const ArenaHeader& h = detail::hdr(ref_);
  return static_cast<std::size_t>(std::atomic_ref<std::uint64_t>(const_cast<std::uint64_t&>(h.top))
                                      .load(std::memory_order_relaxed) -
                                  h.heap_begin);
}

// A log entry: [u8 level][i32 pid][u64 text length][text], decodable as
// std::tuple<std::uint8_t, std::int32_t, std::string>.
void Share::Log::write(LogLevel level, std::string_view text) const {
  detail::ShareLock lock(ref_);
  const auto lv = static_cast<std::uint8_t>(level);
  const auto pid = static_cast<std::int32_t>(getpid());
  const std::uint64_t len = text.size();
  const std::uint64_t block =
      detail::share_alloc(ref_, sizeof lv + sizeof pid + sizeof len + text.size());
  Writer w(detail::share_data(ref_, block));
  w.write_bytes(&lv, sizeof lv);
  w.write_bytes(&pid, sizeof pid);
  w.write_bytes(&len, sizeof len);
  w.write_bytes(text.data(), text.size());
  detail::share_list_push(ref_, obj_, block);
}

std::vector<LogEntry> Share::Log::entries() const {
  detail::ShareLock lock(ref_);
  const std::size_t n = detail::share_list_size(ref_, obj_);
  std::vector<LogEntry> out;
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    auto [lv, pid, text] =
        detail::share_decode<std::tuple<std::uint8_t, std::int32_t, std::string>>(
            detail::share_list_at(ref_, obj_, i));
    out.push_back(LogEntry{static_cast<LogLevel>(lv), static_cast<pid_t>(pid), std::move(text)});
  }
  return out;
}

std::vector<std::string> Share::Log::messages() const {
  std::vector<std::string> out;
  for (LogEntry& e : entries()) out.push_back(std::move(e.text));
  return out;
}

}  // namespace inorder
