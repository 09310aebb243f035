#include "app/sink.h"

#include <httplib.h>
#include <signal.h>

#include <iostream>
#include <thread>

#include "common/clock.h"
#include "common/log.h"
#include "workers/modem/t38_sink.h"

namespace faxflow {

int RunSink(const SinkArgs& args) {
  SetLogLevel(args.log_level);
  auto log = Logger("sink");
  modem::T38SinkOptions o;
  o.listen = args.listen;
  o.dir = args.dir;
  o.ident = args.ident;
  o.behaviours = args.behaviours;
  o.link.redundancy = args.redundancy;
  o.link.paced = args.paced;
  o.idle_timeout_seconds = args.idle_timeout_seconds;
  auto sink = modem::T38Sink::Start(o, SystemClock::Instance());
  if (!sink.ok()) {
    std::cerr << "faxflow sink: " << sink.status().ToString() << "\n";
    return 1;
  }
  const size_t colon = args.http.rfind(':');
  if (colon == std::string::npos) {
    std::cerr << "faxflow sink: --http must be host:port\n";
    return 2;
  }
  const std::string host = args.http.substr(0, colon);
  int port = std::atoi(args.http.substr(colon + 1).c_str());
  httplib::Server server;
  modem::T38Sink* s = sink->get();
  server.Get("/healthz",
             [](const httplib::Request&, httplib::Response& res) { res.set_content("ok\n", "text/plain"); });
  server.Get("/v1/received", [s](const httplib::Request&, httplib::Response& res) {
    res.set_content(s->StatusJson(), "application/json");
  });
  if (port == 0) {
    port = server.bind_to_any_port(host);
  } else if (!server.bind_to_port(host, port)) {
    port = -1;
  }
  if (port <= 0) {
    std::cerr << "faxflow sink: cannot listen on " << args.http << "\n";
    return 1;
  }
  std::thread http([&server] { server.listen_after_bind(); });
  const std::string udp_host = args.listen.substr(0, args.listen.rfind(':'));
  std::cout << "sink ready: t38 udp " << udp_host << ":" << s->port() << ", http " << host << ":" << port
            << ", dir " << s->dir() << std::endl;
  FF_LOG_INFO(log, "faxflow sink: T.38 on udp {}:{}, status on http {}:{}, faxes in {}", udp_host, s->port(),
              host, port, s->dir());
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  int sig = 0;
  sigwait(&set, &sig);
  FF_LOG_INFO(log, "signal {}: stopping", sig);
  server.stop();
  http.join();
  s->Stop();
  return 0;
}

}  // namespace faxflow
