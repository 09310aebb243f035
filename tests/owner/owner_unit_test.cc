// OwnerDirectory on the embedded bus: every node computes the same owner for a tenant, tenants
// spread over the nodes, and a node that leaves hands its tenants to the others.
#include <gtest/gtest.h>
#include <httplib.h>

#include <algorithm>
#include <functional>
#include <map>
#include <set>

#include "common/clock.h"
#include "producers/gateway/owner.h"
#include "tests/support/catalogue_bus.h"
#include "tests/support/support.h"
#include "topics/catalogue.h"
#include "topics/embedded/embedded_bus.h"

namespace faxflow {
namespace {

using namespace std::chrono_literals;
using testing::Await;

// Gateway nodes (OwnerDirectory, redirect mode, fast heartbeats) on one embedded bus.
class OwnerDirectoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    bus_ = testing::OpenCatalogueBus(dir_.path() + "/bus");
    ASSERT_TRUE(bus_);
  }

  // Starts `count` nodes at http://127.0.0.1:<first_port + i>; `configure` adjusts node i's options.
  void StartNodes(int count, int first_port, std::chrono::milliseconds member_timeout,
                  const std::function<void(int, OwnerOptions&)>& configure = nullptr) {
    for (int i = 0; i < count; ++i) {
      OwnerOptions o;
      o.self_url = "http://127.0.0.1:" + std::to_string(first_port + i);
      o.mode = "redirect";
      o.heartbeat_interval = 100ms;
      o.member_timeout = member_timeout;
      if (configure) configure(i, o);
      nodes_.push_back(std::make_unique<OwnerDirectory>(o, *bus_, registry_, SystemClock::Instance()));
      ASSERT_TRUE(nodes_.back()->Start().ok());
    }
  }

  // Every node in `which` (all when empty) sees exactly `members` members.
  bool AllSee(size_t members, const std::vector<size_t>& which = {}) const {
    for (size_t i = 0; i < nodes_.size(); ++i) {
      if (!which.empty() && std::find(which.begin(), which.end(), i) == which.end()) continue;
      if (nodes_[i]->Members().size() != members) return false;
    }
    return true;
  }

  testing::TempDir dir_;
  std::unique_ptr<bus::EmbeddedBus> bus_;  // outlives the nodes
  prometheus::Registry registry_;
  std::vector<std::unique_ptr<OwnerDirectory>> nodes_;
};

TEST_F(OwnerDirectoryTest, NodesAgreeSpreadTenantsAndReassignWhenOneLeaves) {
  ASSERT_NO_FATAL_FAILURE(StartNodes(3, 9100, 1s));
  auto& nodes = nodes_;
  ASSERT_TRUE(Await([&] { return AllSee(3); }, 10s));
  std::set<std::string> owners;
  std::map<std::string, std::string> before;
  for (int t = 0; t < 30; ++t) {
    const std::string tenant = "tenant" + std::to_string(t);
    const std::string o = nodes[0]->OwnerOf(tenant);
    for (auto& n : nodes) EXPECT_EQ(n->OwnerOf(tenant), o) << tenant;
    owners.insert(o);
    before[tenant] = o;
  }
  EXPECT_EQ(owners.size(), 3u) << "30 tenants should land on all three nodes";

  const std::string leaving = nodes[2]->self();
  nodes[2]->Stop();  // tombstone
  ASSERT_TRUE(Await([&] { return AllSee(2, {0, 1}); }, 10s));
  for (const auto& [tenant, old] : before) {
    const std::string now = nodes[0]->OwnerOf(tenant);
    EXPECT_NE(now, leaving);
    EXPECT_EQ(nodes[1]->OwnerOf(tenant), now);
    if (old != leaving) {
      EXPECT_EQ(now, old) << "only the leaving node's tenants move";
    }
  }
}

// POST /v1/faxes is routed like the status requests (gateway.route_submissions, the default), and
// served where it lands when the switch is off; cancel is routed either way.
TEST_F(OwnerDirectoryTest, SubmissionsAreRoutedUnlessSwitchedOff) {
  ASSERT_NO_FATAL_FAILURE(
      StartNodes(2, 9200, 2s, [](int i, OwnerOptions& o) { o.route_submissions = i == 0; }));
  auto& nodes = nodes_;
  ASSERT_TRUE(Await([&] { return AllSee(2); }, 10s));
  // A tenant owned by the other node, for each node.
  auto owned_by = [&](const OwnerDirectory& owner) {
    for (int t = 0;; ++t)
      if (nodes[0]->OwnerOf("tenant" + std::to_string(t)) == owner.self())
        return "tenant" + std::to_string(t);
  };
  auto route = [](OwnerDirectory& node, const std::string& method, const std::string& path,
                  const std::string& tenant, httplib::Response& res) {
    httplib::Request req;
    req.method = method;
    req.path = path;
    req.target = path;
    return node.Route(req, res, tenant);
  };
  {
    httplib::Response res;
    ASSERT_TRUE(route(*nodes[0], "POST", "/v1/faxes", owned_by(*nodes[1]), res));
    EXPECT_EQ(res.status, 307);
    EXPECT_EQ(res.get_header_value("Location"), nodes[1]->self() + "/v1/faxes");
  }
  {
    httplib::Response res;
    EXPECT_FALSE(route(*nodes[1], "POST", "/v1/faxes", owned_by(*nodes[0]), res))
        << "route_submissions=false: a submission is served where it lands";
    EXPECT_TRUE(route(*nodes[1], "POST", "/v1/faxes/fax_1/cancel", owned_by(*nodes[0]), res));
    EXPECT_EQ(res.status, 307);
  }
  {
    httplib::Response res;  // this node's own tenant: served here
    EXPECT_FALSE(route(*nodes[0], "POST", "/v1/faxes", owned_by(*nodes[0]), res));
  }
  for (auto& n : nodes) n->Stop();
}

}  // namespace
}  // namespace faxflow
