// src/mpi/identity.cpp: portable code references and the binary identity.
//
// A code address differs between two processes that were not forked from
// each other (ASLR), but its offset from the load address of its module does
// not, and the dynamic loader maps the modules of one binary in the same
// order in every process. So a CodeRef is (module index, offset), computed on
// rank 0 and resolved on the rank that runs the task. Both need the same
// binary and the same list of modules: identity() covers both, and the
// Session compares it between ranks before any task moves.
#include "identity.hpp"

#include <elf.h>
#include <link.h>
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <stdexcept>
#include <string_view>
#include <unordered_map>

namespace inorder::mpi::detail {
namespace {

/// Bumped whenever the layout of a message between ranks changes.
constexpr std::uint32_t kWireVersion = 1;

struct Module {
  std::uintptr_t base = 0;  ///< load bias (dlpi_addr): address = base + offset
  std::string name;         ///< file name as the loader reports it; "" for the executable
  std::vector<std::pair<std::uintptr_t, std::uintptr_t>> loads;  ///< [begin, end) of PT_LOAD
  std::string build_id;                                          ///< hex; empty if none
};

std::string hex(const unsigned char* p, std::size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s;
  s.reserve(2 * n);
  for (std::size_t i = 0; i < n; ++i) {
    s += kDigits[p[i] >> 4];
    s += kDigits[p[i] & 15];
  }
  return s;
}

std::string find_build_id(const dl_phdr_info* info) {
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_NOTE) continue;
    const auto* p = reinterpret_cast<const unsigned char*>(info->dlpi_addr + ph.p_vaddr);
    const unsigned char* end = p + ph.p_memsz;
    while (p + sizeof(ElfW(Nhdr)) <= end) {
      ElfW(Nhdr) nh;
      std::memcpy(&nh, p, sizeof nh);
      const unsigned char* name = p + sizeof nh;
      const unsigned char* desc = name + ((nh.n_namesz + 3U) & ~3U);
      if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 && std::memcmp(name, "GNU", 4) == 0 &&
          desc + nh.n_descsz <= end)
        return hex(desc, nh.n_descsz);
      p = desc + ((nh.n_descsz + 3U) & ~3U);
    }
  }
  return {};
}

int collect(dl_phdr_info* info, std::size_t, void* data) {
  auto& mods = *static_cast<std::vector<Module>*>(data);
  Module m;
  m.base = info->dlpi_addr;
  m.name = info->dlpi_name != nullptr ? info->dlpi_name : "";
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type == PT_LOAD)
      m.loads.emplace_back(info->dlpi_addr + ph.p_vaddr, info->dlpi_addr + ph.p_vaddr + ph.p_memsz);
  }
  m.build_id = find_build_id(info);
  mods.push_back(std::move(m));
  return 0;
}

/// The module table, read once. Code loaded with dlopen later is not in it.
const std::vector<Module>& modules() {
  static const std::vector<Module> mods = [] {
    std::vector<Module> v;
    dl_iterate_phdr(collect, &v);
    return v;
  }();
  return mods;
}

/// FNV-1a, 64 bits: a fingerprint for equality checks, not a defence.
std::uint64_t fnv(std::uint64_t h, std::string_view s) {
  for (const char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ULL;
  }
  return h;
}
constexpr std::uint64_t kFnvSeed = 0xcbf29ce484222325ULL;

std::string basename_of(const std::string& path) {
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

CodeRef code_ref(std::uintptr_t address) {
  static std::mutex mu;
  static std::unordered_map<std::uintptr_t, CodeRef> cache;
  std::lock_guard lock(mu);
  if (const auto it = cache.find(address); it != cache.end()) return it->second;
  const auto& mods = modules();
  for (std::size_t i = 0; i < mods.size(); ++i) {
    for (const auto& [b, e] : mods[i].loads) {
      if (address >= b && address < e) {
        CodeRef ref;
        ref.module = static_cast<std::uint32_t>(i);
        ref.offset = address - mods[i].base;
        cache.emplace(address, ref);
        return ref;
      }
    }
  }
  throw std::invalid_argument(
      "inorder::mpi: a task's code is in no module loaded at start-up (loaded with dlopen "
      "later?); it cannot be named on another rank");
}

std::uintptr_t resolve(const CodeRef& ref) {
  const auto& mods = modules();
  if (ref.module >= mods.size())
    throw std::runtime_error("inorder::mpi: a task names module " + std::to_string(ref.module) +
                             ", which this rank has not loaded");
  return mods[ref.module].base + ref.offset;
}

const Identity& identity() {
  static const Identity id = [] {
    Identity out;
    const auto& mods = modules();
    std::uint64_t h = kFnvSeed;
    // The executable: its build-id, or the hash of its bytes when it has none.
    std::string exe_id = mods.empty() ? std::string() : mods.front().build_id;
    if (!exe_id.empty()) {
      out.binary_text = "build-id " + exe_id;
    } else {
      std::ifstream in("/proc/self/exe", std::ios::binary);
      std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      char buf[32];
      std::snprintf(buf, sizeof buf, "%016llx",
                    static_cast<unsigned long long>(fnv(kFnvSeed, bytes)));
      exe_id = buf;
      out.binary_text = "executable hash " + exe_id;
    }
    h = fnv(h, exe_id);
    // The modules after it, by file name: the same names in the same order
    // make module indexes mean the same everywhere. The kernel's vDSO is left
    // out (it differs between kernels and holds no task code).
    for (std::size_t i = 1; i < mods.size(); ++i) {
      const std::string name = basename_of(mods[i].name);
      if (name.empty() || name.starts_with("linux-vdso") || name.starts_with("linux-gate"))
        continue;
      h = fnv(h, name);
      h = fnv(h, "\n");
    }
    out.binary = h;
    std::string abi = "wire " + std::to_string(kWireVersion);
    abi += " compiler " __VERSION__;
    abi += " cplusplus " + std::to_string(__cplusplus);
    abi += " ptr " + std::to_string(sizeof(void*)) + " long " + std::to_string(sizeof(long)) +
           " ldouble " + std::to_string(sizeof(long double));
    abi += " order " + std::to_string(__BYTE_ORDER__);
#ifdef _GLIBCXX_USE_CXX11_ABI
    abi += " cxx11abi " + std::to_string(_GLIBCXX_USE_CXX11_ABI);
#endif
    out.abi = fnv(kFnvSeed, abi);
    return out;
  }();
  return id;
}

}  // namespace inorder::mpi::detail
