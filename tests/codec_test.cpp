// Tests for inorder/codec.hpp: round trips for every supported type, sizes, the user
// hook, rejection of corrupt input, and which types Encodable accepts.
#include "inorder/codec.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <limits>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <variant>
#include <vector>

namespace {

using inorder::DecodeError;
using inorder::Encodable;

// Round-trips value through encode_to_vector/decode_from, checking on the way that
// encoded_size, a counting Writer and a writing Writer all agree on the size and
// that encode stays inside the buffer it was given.
template <class T>
T round_trip(const T& value) {
  const std::size_t size = inorder::encoded_size(value);
  inorder::Writer counter;
  inorder::encode(counter, value);
  EXPECT_EQ(counter.size(), size);

  constexpr std::size_t kGuard = 16;
  std::vector<std::byte> buffer(size + kGuard, std::byte{0x5A});
  inorder::Writer writer(buffer.data());
  inorder::encode(writer, value);
  EXPECT_EQ(writer.size(), size);
  for (std::size_t i = size; i < buffer.size(); ++i) {
    EXPECT_EQ(buffer[i], std::byte{0x5A}) << "encode wrote past encoded_size at " << i;
  }

  // Not compared byte for byte: padding bytes of memcpy'd types are indeterminate.
  const std::vector<std::byte> bytes = inorder::encode_to_vector(value);
  EXPECT_EQ(bytes.size(), size);
  T decoded = inorder::decode_from<T>(bytes.data(), bytes.size());
  EXPECT_TRUE(inorder::decode_from<T>(buffer.data(), size) == decoded);
  return decoded;
}

// Every strict prefix of a valid encoding must be rejected with DecodeError.
template <class T>
void expect_every_truncation_throws(const T& value) {
  const std::vector<std::byte> bytes = inorder::encode_to_vector(value);
  ASSERT_FALSE(bytes.empty());
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_THROW((void)inorder::decode_from<T>(bytes.data(), n), DecodeError)
        << "prefix of " << n << " of " << bytes.size() << " bytes";
  }
}

// prefix + i, built by appending: GCC 12 at -O3 reports a false -Wrestrict on
// `"literal" + std::string`.
std::string numbered(const char* prefix, int i) {
  std::string s = prefix;
  s += std::to_string(i);
  return s;
}

std::vector<std::byte> bytes_of_u64(std::uint64_t v) {
  std::vector<std::byte> out(sizeof v);
  std::memcpy(out.data(), &v, sizeof v);
  return out;
}

enum class Color : std::uint8_t { kRed, kGreen, kBlue };

struct Plain {
  int id;
  double weight;
  char tag[6];
  Color color;
  friend bool operator==(const Plain&, const Plain&) = default;
};

// Trivially copyable, but with no default constructor.
struct Point {
  Point(int x_in, int y_in) : x(x_in), y(y_in) {}
  int x;
  int y;
  friend bool operator==(const Point&, const Point&) = default;
};

// Not trivially copyable, no default constructor: needs the hook.
class Account {
 public:
  Account(std::string owner, std::int64_t cents) : owner_(std::move(owner)), cents_(cents) {}
  [[nodiscard]] const std::string& owner() const { return owner_; }
  [[nodiscard]] std::int64_t cents() const { return cents_; }
  friend bool operator==(const Account&, const Account&) = default;

 private:
  std::string owner_;
  std::int64_t cents_;
};

// Trivially copyable, yet with a hook: the hook must win over memcpy.
struct Tagged {
  int value;
  friend bool operator==(const Tagged&, const Tagged&) = default;
};
constexpr std::byte kTaggedMarker{0xAB};

// Recursive through a standard container, encoded through the hook.
struct Tree {
  int value = 0;
  std::vector<Tree> children;
  friend bool operator==(const Tree&, const Tree&) = default;
};

// Throws from one constructor, to leave a std::variant valueless.
struct Explosive {
  struct Armed {};
  Explosive() = default;
  explicit Explosive(Armed) { throw std::runtime_error("boom"); }
  std::string payload;
};

// Neither trivially copyable nor hooked.
struct HoldsString {
  std::string text;
};

// A hook that is present but has the wrong shape.
struct BadlyHooked {
  std::string text;
};

// Records the largest single allocation made through it.
std::size_t g_largest_allocation = 0;

template <class T>
struct TrackingAllocator {
  using value_type = T;
  TrackingAllocator() = default;
  template <class U>
  explicit TrackingAllocator(const TrackingAllocator<U>&) noexcept {}
  T* allocate(std::size_t n) {
    g_largest_allocation = std::max(g_largest_allocation, n * sizeof(T));
    return std::allocator<T>{}.allocate(n);
  }
  void deallocate(T* p, std::size_t n) noexcept { std::allocator<T>{}.deallocate(p, n); }
  template <class U>
  bool operator==(const TrackingAllocator<U>&) const noexcept {
    return true;
  }
};

}  // namespace

template <>
struct inorder::codec<Account> {
  static void encode(inorder::Writer& w, const Account& a) {
    inorder::encode(w, a.owner());
    inorder::encode(w, a.cents());
  }
  static Account decode(inorder::Reader& r) {
    auto owner = inorder::decode<std::string>(r);
    auto cents = inorder::decode<std::int64_t>(r);
    return Account(std::move(owner), cents);
  }
};

template <>
struct inorder::codec<Tagged> {
  static void encode(inorder::Writer& w, const Tagged& t) {
    w.write_bytes(&kTaggedMarker, 1);
    inorder::encode(w, t.value);
  }
  static Tagged decode(inorder::Reader& r) {
    if (*r.take(1) != kTaggedMarker) throw inorder::DecodeError("missing Tagged marker");
    return Tagged{inorder::decode<int>(r)};
  }
};

template <>
struct inorder::codec<Tree> {
  static void encode(inorder::Writer& w, const Tree& t) {
    inorder::encode(w, t.value);
    inorder::encode(w, t.children);
  }
  static Tree decode(inorder::Reader& r) {
    Tree t;
    t.value = inorder::decode<int>(r);
    t.children = inorder::decode<std::vector<Tree>>(r);
    return t;
  }
};

template <>
struct inorder::codec<Explosive> {
  static void encode(inorder::Writer& w, const Explosive& e) { inorder::encode(w, e.payload); }
  static Explosive decode(inorder::Reader& r) {
    Explosive e;
    e.payload = inorder::decode<std::string>(r);
    return e;
  }
};

template <>
struct inorder::codec<BadlyHooked> {
  static std::string encode(const BadlyHooked& b) { return b.text; }  // wrong signature
};

// ---------------------------------------------------------------------------
// Which types are accepted. Checked at compile time and reported at run time.

static_assert(Encodable<int> && Encodable<double> && Encodable<bool> && Encodable<char>);
static_assert(Encodable<Color> && Encodable<Plain> && Encodable<Point>);
static_assert(Encodable<int*> && Encodable<void (*)(int)> && Encodable<const int>);
static_assert(Encodable<std::monostate> && Encodable<std::tuple<>>);
static_assert(Encodable<std::string> && Encodable<std::u32string> && Encodable<std::wstring>);
static_assert(Encodable<std::vector<int>> && Encodable<std::vector<bool>>);
static_assert(Encodable<std::vector<std::string>> && Encodable<std::array<std::string, 3>>);
static_assert(Encodable<std::map<std::string, int>> && Encodable<std::multimap<int, int>>);
static_assert(Encodable<std::unordered_map<int, std::string>> && Encodable<std::set<int>>);
static_assert(Encodable<std::unordered_set<std::string>> && Encodable<std::multiset<int>>);
static_assert(Encodable<std::deque<std::string>> && Encodable<std::list<std::string>>);
static_assert(Encodable<std::optional<std::string>> && Encodable<std::pair<int, std::string>>);
static_assert(Encodable<std::variant<std::monostate, int, std::string>>);
static_assert(
    Encodable<std::map<std::string, std::vector<std::optional<std::tuple<int, std::string>>>>>);
static_assert(Encodable<Account> && Encodable<Tagged> && Encodable<Tree>);
static_assert(Encodable<std::vector<Account>> && Encodable<std::array<Account, 2>>);

static_assert(!Encodable<std::string_view> && !Encodable<std::wstring_view>);
static_assert(!Encodable<std::span<int>> && !Encodable<std::span<const int, 3>>);
static_assert(!Encodable<std::unique_ptr<int>> && !Encodable<std::shared_ptr<int>>);
static_assert(!Encodable<std::function<void()>> && !Encodable<std::atomic<int>>);
static_assert(!Encodable<HoldsString> && !Encodable<BadlyHooked>);
static_assert(!Encodable<std::vector<HoldsString>> && !Encodable<std::map<int, HoldsString>>);
static_assert(!Encodable<std::vector<std::string_view>>);
// Trivially copyable standard types that would carry a dangling pointer are refused too.
static_assert(!Encodable<std::optional<std::string_view>>);
static_assert(!Encodable<std::array<std::string_view, 2>>);
static_assert(!Encodable<std::variant<int, std::span<int>>>);
static_assert(!Encodable<int[4]> && !Encodable<void> && !Encodable<int&>);

TEST(Codec, EncodableAcceptsSupportedTypes) {
  EXPECT_TRUE(Encodable<int>);
  EXPECT_TRUE(Encodable<Point>);
  EXPECT_TRUE(Encodable<std::string>);
  EXPECT_TRUE((Encodable<std::map<std::string, std::vector<int>>>));
  EXPECT_TRUE((Encodable<std::variant<int, std::string>>));
  EXPECT_TRUE(Encodable<Account>);
  EXPECT_TRUE(Encodable<Tree>);
}

TEST(Codec, EncodableRejectsPointerViewsAndUnhookedTypes) {
  EXPECT_FALSE(Encodable<std::string_view>);
  EXPECT_FALSE(Encodable<std::span<const int>>);
  EXPECT_FALSE(Encodable<HoldsString>);
  EXPECT_FALSE(Encodable<BadlyHooked>);
  EXPECT_FALSE(Encodable<std::unique_ptr<int>>);
  EXPECT_FALSE((Encodable<std::vector<std::string_view>>));
  EXPECT_FALSE((Encodable<std::optional<std::string_view>>));
}

// ---------------------------------------------------------------------------
// Writer and Reader.

TEST(Codec, CountingWriterCountsWithoutWriting) {
  inorder::Writer w;
  const char text[] = "abcdef";
  w.write_bytes(text, 6);
  w.write_bytes(nullptr, 0);
  w.write_bytes(text, 2);
  EXPECT_EQ(w.size(), 8u);
}

TEST(Codec, ReaderTakesInOrderAndThrowsPastTheEnd) {
  const std::byte data[] = {std::byte{1}, std::byte{2}, std::byte{3}};
  inorder::Reader r(data, sizeof data);
  EXPECT_EQ(r.remaining(), 3u);
  EXPECT_EQ(*r.take(1), std::byte{1});
  std::byte two[2];
  r.read_bytes(two, 2);
  EXPECT_EQ(two[1], std::byte{3});
  EXPECT_EQ(r.remaining(), 0u);
  (void)r.take(0);
  EXPECT_THROW((void)r.take(1), DecodeError);
  EXPECT_THROW(r.read_bytes(two, 1), DecodeError);
}

TEST(Codec, EmptyReaderOverNullAcceptsZeroLengthReads) {
  inorder::Reader r(nullptr, 0);
  r.read_bytes(nullptr, 0);
  EXPECT_EQ(r.remaining(), 0u);
  EXPECT_THROW(r.read_bytes(nullptr, 1), DecodeError);
}

// ---------------------------------------------------------------------------
// Trivially copyable types.

TEST(Codec, RoundTripsScalarsEnumsAndPlainStructs) {
  EXPECT_EQ(round_trip(42), 42);
  EXPECT_EQ(round_trip(-1.5), -1.5);
  EXPECT_EQ(round_trip(true), true);
  EXPECT_EQ(round_trip('q'), 'q');
  EXPECT_EQ(round_trip(std::numeric_limits<std::uint64_t>::max()),
            std::numeric_limits<std::uint64_t>::max());
  EXPECT_EQ(round_trip(Color::kBlue), Color::kBlue);
  const Plain p{7, 2.25, "hello", Color::kGreen};
  EXPECT_EQ(round_trip(p), p);
  EXPECT_EQ(round_trip(std::array<int, 4>{1, 2, 3, 4}), (std::array<int, 4>{1, 2, 3, 4}));
  EXPECT_EQ(round_trip(std::optional<int>{}), std::nullopt);
  EXPECT_EQ(round_trip(std::optional<int>{9}), 9);
}

TEST(Codec, TriviallyCopyableEncodedSizeIsSizeof) {
  EXPECT_EQ(inorder::encoded_size(1), sizeof(int));
  EXPECT_EQ(inorder::encoded_size(Plain{}), sizeof(Plain));
  EXPECT_EQ(inorder::encoded_size(Point{1, 2}), sizeof(Point));
  EXPECT_EQ(inorder::encoded_size(std::array<double, 100>{}), sizeof(std::array<double, 100>));
}

TEST(Codec, RoundTripsTriviallyCopyableStructWithoutDefaultConstructor) {
  static_assert(!std::is_default_constructible_v<Point>);
  EXPECT_EQ(round_trip(Point{3, -4}), (Point{3, -4}));
  const std::vector<Point> points{{1, 2}, {3, 4}, {5, 6}};
  EXPECT_EQ(round_trip(points), points);
  const std::optional<Point> maybe{Point{8, 9}};
  EXPECT_EQ(round_trip(maybe), maybe);
}

TEST(Codec, RoundTripsRawAndFunctionPointerValues) {
  static int target = 5;
  EXPECT_EQ(round_trip(&target), &target);
  int (*fn)(int) = [](int x) { return x + 1; };
  EXPECT_EQ(round_trip(fn)(1), 2);
}

TEST(Codec, RoundTripsMonostateAndEmptyTuple) {
  EXPECT_EQ(round_trip(std::monostate{}), std::monostate{});
  EXPECT_EQ(round_trip(std::tuple<>{}), std::tuple<>{});
}

// ---------------------------------------------------------------------------
// Strings and containers.

TEST(Codec, RoundTripsEmptyAndShortStrings) {
  EXPECT_EQ(round_trip(std::string()), "");
  EXPECT_EQ(round_trip(std::string("x")), "x");
  const std::string with_nul("a\0b\0c", 5);
  EXPECT_EQ(round_trip(with_nul), with_nul);
}

TEST(Codec, EncodesStringAsNativeUint64LengthThenCharacters) {
  const std::vector<std::byte> bytes = inorder::encode_to_vector(std::string("abc"));
  ASSERT_EQ(bytes.size(), sizeof(std::uint64_t) + 3);
  std::uint64_t length = 0;
  std::memcpy(&length, bytes.data(), sizeof length);
  EXPECT_EQ(length, 3u);
  EXPECT_EQ(bytes[8], std::byte{'a'});
}

TEST(Codec, RoundTripsTenMebibyteString) {
  std::string big(10u << 20, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 31 + 7);
  EXPECT_EQ(inorder::encoded_size(big), sizeof(std::uint64_t) + big.size());
  EXPECT_TRUE(round_trip(big) == big);
}

TEST(Codec, RoundTripsWideAndUnicodeStrings) {
  EXPECT_EQ(round_trip(std::wstring(L"wide")), L"wide");
  EXPECT_EQ(round_trip(std::u32string(U"\U0001F600 smile")), U"\U0001F600 smile");
  // EXPECT_TRUE: the packaged gtest library has no char8_t printer to link against.
  EXPECT_TRUE(round_trip(std::u8string(u8"caf\u00e9")) == u8"caf\u00e9");
}

TEST(Codec, RoundTripsVectorOfOneMillionIntsAsOneBulkCopy) {
  std::vector<int> v(1'000'000);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<int>(i * 2654435761u);
  EXPECT_EQ(inorder::encoded_size(v), sizeof(std::uint64_t) + v.size() * sizeof(int));
  EXPECT_TRUE(round_trip(v) == v);
}

TEST(Codec, RoundTripsEmptyContainers) {
  EXPECT_TRUE(round_trip(std::vector<int>{}).empty());
  EXPECT_TRUE(round_trip(std::vector<std::string>{}).empty());
  EXPECT_TRUE((round_trip(std::map<std::string, int>{}).empty()));
  EXPECT_TRUE(round_trip(std::set<int>{}).empty());
  EXPECT_TRUE(round_trip(std::deque<int>{}).empty());
  EXPECT_TRUE(round_trip(std::list<std::string>{}).empty());
  EXPECT_TRUE((round_trip(std::unordered_map<int, int>{}).empty()));
  EXPECT_EQ(inorder::encoded_size(std::vector<int>{}), sizeof(std::uint64_t));
}

TEST(Codec, RoundTripsVectorsOfBoolStringsAndHookedTypes) {
  const std::vector<bool> bits{true, false, false, true, true};
  EXPECT_EQ(round_trip(bits), bits);
  const std::vector<std::string> words{"", "one", std::string(1000, 'z')};
  EXPECT_EQ(round_trip(words), words);
  const std::vector<Account> accounts{{"ada", 100}, {"bob", -5}};
  EXPECT_EQ(round_trip(accounts), accounts);
}

TEST(Codec, RoundTripsStdArrayOfNonTrivialElements) {
  const std::array<std::string, 3> words{"a", "", "ccc"};
  EXPECT_EQ(round_trip(words), words);
  const std::array<Account, 2> accounts{Account{"x", 1}, Account{"y", 2}};
  EXPECT_EQ(round_trip(accounts), accounts);
}

TEST(Codec, RoundTripsMapWithTenThousandEntries) {
  std::map<std::string, int> m;
  for (int i = 0; i < 10'000; ++i) m.emplace(numbered("key-", i), i * i);
  EXPECT_EQ(round_trip(m), m);
}

TEST(Codec, RoundTripsUnorderedMapsAndSets) {
  std::unordered_map<int, std::string> um;
  std::unordered_set<std::string> us;
  for (int i = 0; i < 500; ++i) {
    um.emplace(i, std::string(static_cast<std::size_t>(i % 17), 'a'));
    us.insert(std::to_string(i * 7));
  }
  EXPECT_EQ(round_trip(um), um);
  EXPECT_EQ(round_trip(us), us);
  const std::unordered_multiset<int> ums{1, 1, 2, 3, 3, 3};
  EXPECT_EQ(round_trip(ums), ums);
  const std::unordered_multimap<int, int> umm{{1, 10}, {1, 11}, {2, 20}};
  EXPECT_EQ(round_trip(umm), umm);
}

TEST(Codec, RoundTripsOrderedSetsAndMultiContainersKeepingDuplicates) {
  const std::set<std::string> s{"pear", "apple", "fig"};
  EXPECT_EQ(round_trip(s), s);
  const std::multiset<int> ms{5, 1, 5, 5, 2};
  EXPECT_EQ(round_trip(ms), ms);
  const std::multimap<std::string, int> mm{{"a", 1}, {"a", 2}, {"b", 3}, {"a", 0}};
  const auto decoded = round_trip(mm);
  EXPECT_EQ(decoded, mm);
  EXPECT_TRUE(std::equal(decoded.begin(), decoded.end(), mm.begin()));  // equal-key order kept
}

TEST(Codec, RoundTripsDequeAndList) {
  const std::deque<std::string> d{"front", "middle", "back"};
  EXPECT_EQ(round_trip(d), d);
  const std::list<int> l{3, 1, 4, 1, 5};
  EXPECT_EQ(round_trip(l), l);
}

TEST(Codec, RoundTripsOptionalEmptyAndEngaged) {
  EXPECT_EQ(round_trip(std::optional<std::string>{}), std::nullopt);
  EXPECT_EQ(round_trip(std::optional<std::string>{"here"}), "here");
  EXPECT_EQ(round_trip(std::optional<std::string>{""}), "");
  EXPECT_EQ(inorder::encoded_size(std::optional<std::string>{}), 1u);
}

TEST(Codec, RoundTripsVariantWithEachAlternative) {
  using V = std::variant<std::monostate, int, std::string, std::vector<double>, Account>;
  const std::vector<V> values{V{}, V{std::in_place_index<1>, -7}, V{std::string("text")},
                              V{std::vector<double>{0.5, 1.5}}, V{Account{"carol", 3}}};
  for (const V& v : values) {
    const V decoded = round_trip(v);
    EXPECT_EQ(decoded.index(), v.index());
    EXPECT_TRUE(decoded == v) << "alternative " << v.index();
  }
}

TEST(Codec, RoundTripsVariantWithRepeatedAlternativeTypesByIndex) {
  using V = std::variant<std::string, int, std::string>;
  const V second{std::in_place_index<2>, "third"};
  EXPECT_EQ(round_trip(second).index(), 2u);
  EXPECT_EQ(std::get<2>(round_trip(second)), "third");
}

TEST(Codec, EncodingValuelessVariantThrowsBadVariantAccess) {
  std::variant<int, Explosive> v{1};
  EXPECT_THROW(v.emplace<Explosive>(Explosive::Armed{}), std::runtime_error);
  ASSERT_TRUE(v.valueless_by_exception());
  inorder::Writer counter;
  EXPECT_THROW(inorder::encode(counter, v), std::bad_variant_access);
  EXPECT_THROW((void)inorder::encoded_size(v), std::bad_variant_access);
}

TEST(Codec, RoundTripsPairsAndTuples) {
  const std::pair<std::string, int> p{"seven", 7};
  EXPECT_EQ(round_trip(p), p);
  const std::tuple<int, std::string, std::vector<int>, double> t{1, "two", {3, 3, 3}, 4.0};
  EXPECT_EQ(round_trip(t), t);
  const std::tuple<std::string> single{"alone"};
  EXPECT_EQ(round_trip(single), single);
  const std::pair<const std::string, int> map_entry{"const key", 1};  // a map's value_type
  EXPECT_EQ(round_trip(map_entry), map_entry);
}

TEST(Codec, RoundTripsNestedMapOfVectorsOfOptionalTuples) {
  using Nested = std::map<std::string, std::vector<std::optional<std::tuple<int, std::string>>>>;
  Nested n;
  n["empty"] = {};
  n["mixed"] = {std::nullopt, std::tuple{1, std::string("one")}, std::tuple{2, std::string()}};
  for (int i = 0; i < 50; ++i) {
    n[numbered("k", i)].assign(static_cast<std::size_t>(i),
                               std::tuple{i, std::string(static_cast<std::size_t>(i), 'n')});
  }
  EXPECT_EQ(round_trip(n), n);
}

TEST(Codec, RoundTripsOtherDeepNestings) {
  const std::vector<std::map<int, std::set<std::string>>> a{{}, {{1, {"x", "y"}}, {2, {}}}};
  EXPECT_EQ(round_trip(a), a);
  const std::unordered_map<std::string, std::variant<int, std::vector<std::string>>> b{
      {"n", 5}, {"v", std::vector<std::string>{"p", "q"}}};
  EXPECT_EQ(round_trip(b), b);
  const std::pair<std::string, std::array<std::optional<std::string>, 2>> c{"c", {{"d", {}}}};
  EXPECT_EQ(round_trip(c), c);
  const std::deque<std::list<std::pair<int, std::string>>> d{{{1, "a"}, {2, "b"}}, {}};
  EXPECT_EQ(round_trip(d), d);
  const std::optional<std::optional<std::string>> e{std::optional<std::string>{}};
  EXPECT_EQ(round_trip(e), e);
}

// ---------------------------------------------------------------------------
// The user hook.

TEST(Codec, UserCodecRoundTripsTypeWithoutDefaultConstructor) {
  const Account a{"dora", 123456789};
  EXPECT_EQ(round_trip(a), a);
  EXPECT_EQ(inorder::encoded_size(a), sizeof(std::uint64_t) + 4 + sizeof(std::int64_t));
}

TEST(Codec, UserCodecWinsOverMemcpyForTriviallyCopyableType) {
  static_assert(std::is_trivially_copyable_v<Tagged>);
  const std::vector<std::byte> bytes = inorder::encode_to_vector(Tagged{42});
  ASSERT_EQ(bytes.size(), 1 + sizeof(int));
  EXPECT_EQ(bytes[0], kTaggedMarker);
  EXPECT_EQ(round_trip(Tagged{42}), Tagged{42});
  // Inside a vector too: one marker per element, no bulk copy.
  const std::vector<Tagged> v{{1}, {2}, {3}};
  EXPECT_EQ(inorder::encoded_size(v), sizeof(std::uint64_t) + 3 * (1 + sizeof(int)));
  EXPECT_EQ(round_trip(v), v);
}

TEST(Codec, UserCodecExceptionsPropagateFromDecode) {
  std::vector<std::byte> bytes = inorder::encode_to_vector(Tagged{1});
  bytes[0] = std::byte{0};
  EXPECT_THROW((void)inorder::decode_from<Tagged>(bytes.data(), bytes.size()), DecodeError);
}

TEST(Codec, UserCodecHandlesRecursiveTypeThroughStdVector) {
  Tree t{1, {Tree{2, {}}, Tree{3, {Tree{4, {}}, Tree{5, {}}}}}};
  EXPECT_EQ(round_trip(t), t);
}

// ---------------------------------------------------------------------------
// Corrupt input.

TEST(Codec, DecodeOfTruncatedInputThrowsDecodeError) {
  expect_every_truncation_throws(12345);
  expect_every_truncation_throws(Plain{1, 2.0, "abc", Color::kRed});
  expect_every_truncation_throws(std::string("truncate me"));
  expect_every_truncation_throws(std::vector<int>{1, 2, 3});
  expect_every_truncation_throws(std::vector<std::string>{"a", "bc", ""});
  expect_every_truncation_throws(std::map<std::string, std::vector<int>>{{"k", {1}}, {"l", {}}});
  expect_every_truncation_throws(std::optional<std::string>{"x"});
  expect_every_truncation_throws(std::variant<int, std::string>{std::string("v")});
  expect_every_truncation_throws(std::tuple<int, std::string, double>{1, "s", 2.0});
  expect_every_truncation_throws(std::array<std::string, 2>{"p", "q"});
  expect_every_truncation_throws(Account{"eve", 9});
}

template <class T>
void expect_decode_error(const std::vector<std::byte>& bytes) {
  EXPECT_THROW((void)inorder::decode_from<T>(bytes.data(), bytes.size()), DecodeError);
}

TEST(Codec, DecodeOfHugeBogusLengthThrowsWithoutAllocating) {
  using TrackedString = std::basic_string<char, std::char_traits<char>, TrackingAllocator<char>>;
  using TrackedInts = std::vector<int, TrackingAllocator<int>>;
  using TrackedStrings = std::vector<std::string, TrackingAllocator<std::string>>;
  for (const std::uint64_t bogus : {std::uint64_t{1} << 62, std::uint64_t{1} << 40,
                                    std::numeric_limits<std::uint64_t>::max(), std::uint64_t{9}}) {
    std::vector<std::byte> bytes = bytes_of_u64(bogus);
    bytes.resize(bytes.size() + 8, std::byte{1});  // a few bytes, far fewer than claimed
    g_largest_allocation = 0;
    expect_decode_error<TrackedString>(bytes);
    expect_decode_error<TrackedInts>(bytes);
    expect_decode_error<TrackedStrings>(bytes);
    EXPECT_EQ(g_largest_allocation, 0u) << "allocated before rejecting length " << bogus;
    // Untracked containers: the point is DecodeError rather than bad_alloc or a long hang.
    expect_decode_error<std::map<int, int>>(bytes);
    expect_decode_error<std::unordered_set<std::string>>(bytes);
    expect_decode_error<std::deque<std::vector<int>>>(bytes);
    expect_decode_error<std::list<std::optional<int>>>(bytes);
  }
  // Control: the tracking allocator does see the allocation of a plausible length.
  const TrackedInts hundred(100, 7);
  g_largest_allocation = 0;
  EXPECT_EQ(round_trip(hundred), hundred);
  EXPECT_GE(g_largest_allocation, 100 * sizeof(int));
}

TEST(Codec, DecodeRejectsLengthThatOnlyFitsOneByteElements) {
  // 8 remaining bytes hold 8 chars but only 2 ints and 1 string header.
  std::vector<std::byte> bytes = bytes_of_u64(3);
  bytes.resize(bytes.size() + 8, std::byte{0});
  expect_decode_error<std::vector<int>>(bytes);
  expect_decode_error<std::vector<std::string>>(bytes);
  inorder::Reader r(bytes.data(), bytes.size());  // while 3 chars do fit
  EXPECT_EQ(inorder::decode<std::vector<char>>(r).size(), 3u);
  EXPECT_EQ(r.remaining(), 5u);
}

TEST(Codec, DecodeOfBadVariantIndexThrowsDecodeError) {
  using V = std::variant<int, std::string>;
  std::vector<std::byte> bytes = inorder::encode_to_vector(V{std::string("ok")});
  for (const std::uint64_t bad : {std::uint64_t{2}, std::uint64_t{1} << 63}) {
    std::memcpy(bytes.data(), &bad, sizeof bad);
    EXPECT_THROW((void)inorder::decode_from<V>(bytes.data(), bytes.size()), DecodeError);
  }
}

TEST(Codec, DecodeOfBadOptionalFlagThrowsDecodeError) {
  std::vector<std::byte> bytes = inorder::encode_to_vector(std::optional<std::string>{"x"});
  bytes[0] = std::byte{2};
  EXPECT_THROW((void)inorder::decode_from<std::optional<std::string>>(bytes.data(), bytes.size()),
               DecodeError);
}

TEST(Codec, DecodeFromWithTrailingBytesThrowsDecodeError) {
  std::vector<std::byte> bytes = inorder::encode_to_vector(std::string("exact"));
  EXPECT_EQ(inorder::decode_from<std::string>(bytes.data(), bytes.size()), "exact");
  bytes.push_back(std::byte{0});
  EXPECT_THROW((void)inorder::decode_from<std::string>(bytes.data(), bytes.size()), DecodeError);
  std::vector<std::byte> int_bytes = inorder::encode_to_vector(5);
  int_bytes.push_back(std::byte{0});
  EXPECT_THROW((void)inorder::decode_from<int>(int_bytes.data(), int_bytes.size()), DecodeError);
}

TEST(Codec, DecodeFromReaderLeavesFollowingValuesReadable) {
  inorder::Writer counter;
  inorder::encode(counter, std::string("first"));
  inorder::encode(counter, 2);
  std::vector<std::byte> buffer(counter.size());
  inorder::Writer w(buffer.data());
  inorder::encode(w, std::string("first"));
  inorder::encode(w, 2);
  inorder::Reader r(buffer.data(), buffer.size());
  EXPECT_EQ(inorder::decode<std::string>(r), "first");
  EXPECT_EQ(inorder::decode<int>(r), 2);
  EXPECT_EQ(r.remaining(), 0u);
}
