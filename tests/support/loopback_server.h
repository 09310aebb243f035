// An HTTP server of a test on a free port of one local address (127.0.0.1 by default), serving on
// its own thread: the scaffolding of webhook receivers and fake endpoints. The owner registers
// its handlers on server() and then calls Start().
//
// Lifecycle: Start() binds, starts the thread and waits until the server accepts connections;
// Stop() (or the destructor) stops it and joins the thread. Declare it after everything its
// handlers use, so that it stops before those are destroyed.
// Threading: handlers run on the server's threads; port() and host() may be read from any thread.
//
// Header-only: a test using it links faxflow_test_support (cpp-httplib, GoogleTest).
#pragma once

#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <string>
#include <thread>

#include "tests/support/support.h"

namespace faxflow::testing {

class LoopbackServer {
 public:
  explicit LoopbackServer(std::string host = "127.0.0.1") : host_(std::move(host)) {}
  ~LoopbackServer() { Stop(); }
  LoopbackServer(const LoopbackServer&) = delete;
  LoopbackServer& operator=(const LoopbackServer&) = delete;

  httplib::Server& server() { return server_; }

  // Binds a free port of host() and serves; records a test failure when it cannot.
  void Start() {
    port_ = server_.bind_to_any_port(host_);
    EXPECT_GT(port_, 0) << "no free port on " << host_;
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    // stop() before the listen loop runs would be lost: wait until it does.
    EXPECT_TRUE(Await([this] { return server_.is_running(); }, std::chrono::seconds(5)))
        << "the test server on " << host_ << " did not start";
  }
  void Stop() {
    if (!thread_.joinable()) return;
    server_.stop();
    thread_.join();
  }

  int port() const { return port_; }
  const std::string& host() const { return host_; }
  // http://<host>:<port><path>
  std::string Url(const std::string& path) const {
    return "http://" + host_ + ":" + std::to_string(port_) + path;
  }

 private:
  std::string host_;
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
};

}  // namespace faxflow::testing
