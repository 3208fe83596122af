// The C++ block of docs/codec.md, run with its results checked: an Account
// crosses to a worker and back through its inorder::codec specialization.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <inorder/codec.hpp>

class Account {
 public:
  Account(std::string owner, std::int64_t cents) : owner_(std::move(owner)), cents_(cents) {}
  const std::string& owner() const { return owner_; }
  std::int64_t cents() const { return cents_; }

 private:
  std::string owner_;
  std::int64_t cents_;
};

template <>
struct inorder::codec<Account> {
  static void encode(inorder::Writer& w, const Account& a) {
    inorder::encode(w, a.owner());
    inorder::encode(w, a.cents());
  }
  static Account decode(inorder::Reader& r) {
    auto owner = inorder::decode<std::string>(r);   // read in the order written:
    auto cents = inorder::decode<std::int64_t>(r);  // one statement per field
    return Account(std::move(owner), cents);
  }
};

static_assert(inorder::Encodable<std::vector<Account>>);  // now usable anywhere

#include <inorder/parallel_queue.hpp>

#include "snippet_check.hpp"

namespace {

bool same(const std::vector<Account>& a, const std::vector<Account>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i].owner() != b[i].owner() || a[i].cents() != b[i].cents()) return false;
  return true;
}

Account with_interest(Account a) { return Account(a.owner(), a.cents() + a.cents() / 100); }

void account_codec(snippets::Checker& check) {
  const std::vector<Account> accounts{{"ada", 10'000}, {"grace", 250}, {"", -7}};

  // In this process: encode, then decode the same bytes.
  const std::vector<std::byte> bytes = inorder::encode_to_vector(accounts);
  check.expect(bytes.size() == inorder::encoded_size(accounts), "encoded_size() counts the bytes");
  const auto back = inorder::decode_from<std::vector<Account>>(bytes.data(), bytes.size());
  check.expect(same(back, accounts), "a vector of Account decodes to what was encoded");

  // Across processes: as a task's argument and as its result.
  inorder::ParallelQueue<Account> queue({.workers = 2});
  for (const Account& a : accounts) queue.put(with_interest, a);
  queue.stop();
  std::vector<Account> out;
  while (auto a = queue.get()) out.push_back(std::move(*a));
  check.expect(same(out, {{"ada", 10'100}, {"grace", 252}, {"", -7}}),
               "Accounts cross to a worker and back, in put order");
}

}  // namespace

int main() {
  snippets::Checker check("codec_snippets");
  check.run("account_codec", [&] { account_codec(check); });
  return check.exit_code();
}
