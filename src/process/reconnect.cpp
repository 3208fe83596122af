// src/process/reconnect.cpp: the per-process list of open Reconnects, which
// a Skprocess child closes before it exits (close_reconnects).
#include <pthread.h>

#include <mutex>
#include <new>

#include "inorder/reconnect.hpp"

namespace inorder {
namespace detail {
namespace {

// The list of Reconnects opened by this process. A forked child starts with
// an empty list and a fresh mutex (pthread_atfork): the parent's entries are
// the parent's, and another parent thread may have held the mutex at fork.
alignas(std::mutex) unsigned char g_mutex_storage[sizeof(std::mutex)];
std::mutex* g_mutex = nullptr;
ReconnectNode* g_head = nullptr;  // first open node (guarded by *g_mutex)

std::mutex& registry_mutex() {
  static const bool installed = [] {
    g_mutex = new (g_mutex_storage) std::mutex();
    pthread_atfork(nullptr, nullptr, [] {
      g_mutex = new (g_mutex_storage) std::mutex();
      g_head = nullptr;
    });
    return true;
  }();
  (void)installed;
  return *g_mutex;
}

}  // namespace

void reconnect_link(ReconnectNode* node) {
  const std::lock_guard lock(registry_mutex());
  node->prev_ = nullptr;
  node->next_ = g_head;
  if (g_head != nullptr) g_head->prev_ = node;
  g_head = node;
}

void reconnect_unlink(ReconnectNode* node) noexcept {
  const std::lock_guard lock(registry_mutex());
  if (node->prev_ != nullptr) node->prev_->next_ = node->next_;
  if (node->next_ != nullptr) node->next_->prev_ = node->prev_;
  if (g_head == node) g_head = node->next_;
  node->prev_ = node->next_ = nullptr;
}

}  // namespace detail

void close_reconnects() noexcept {
  for (;;) {
    detail::ReconnectNode* node = nullptr;
    {
      const std::lock_guard lock(detail::registry_mutex());
      node = detail::g_head;
      if (node == nullptr) return;
      detail::g_head = node->next_;
      if (detail::g_head != nullptr) detail::g_head->prev_ = nullptr;
      node->prev_ = node->next_ = nullptr;
    }
    node->close_unlinked();  // outside the lock: a closer may use other Reconnects
  }
}

}  // namespace inorder
