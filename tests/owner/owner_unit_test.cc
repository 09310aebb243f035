// OwnerDirectory on the embedded bus: every node computes the same owner for a tenant, tenants
// spread over the nodes, and a node that leaves hands its tenants to the others.
#include <gtest/gtest.h>
#include <httplib.h>

#include <map>
#include <set>

#include "common/clock.h"
#include "producers/gateway/owner.h"
#include "tests/support/support.h"
#include "topics/catalogue.h"
#include "topics/embedded/embedded_bus.h"

namespace faxflow {
namespace {

using namespace std::chrono_literals;
using testing::Await;

TEST(OwnerDirectoryTest, NodesAgreeSpreadTenantsAndReassignWhenOneLeaves) {
  testing::TempDir dir;
  auto bus = bus::EmbeddedBus::Open(dir.path() + "/bus");
  ASSERT_TRUE(bus.ok()) << bus.status().ToString();
  ASSERT_TRUE((*bus)->EnsureTopics(bus::Catalogue()).ok());
  prometheus::Registry registry;
  std::vector<std::unique_ptr<OwnerDirectory>> nodes;
  for (int i = 0; i < 3; ++i) {
    OwnerOptions o;
    o.self_url = "http://127.0.0.1:" + std::to_string(9100 + i);
    o.mode = "redirect";
    o.heartbeat_interval = 100ms;
    o.member_timeout = 1s;
    nodes.push_back(std::make_unique<OwnerDirectory>(o, **bus, registry, SystemClock::Instance()));
    ASSERT_TRUE(nodes.back()->Start().ok());
  }
  ASSERT_TRUE(Await(
      [&] {
        for (auto& n : nodes)
          if (n->Members().size() != 3) return false;
        return true;
      },
      10s));
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
  ASSERT_TRUE(Await([&] { return nodes[0]->Members().size() == 2 && nodes[1]->Members().size() == 2; }, 10s));
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
TEST(OwnerDirectoryTest, SubmissionsAreRoutedUnlessSwitchedOff) {
  testing::TempDir dir;
  auto bus = bus::EmbeddedBus::Open(dir.path() + "/bus");
  ASSERT_TRUE(bus.ok()) << bus.status().ToString();
  ASSERT_TRUE((*bus)->EnsureTopics(bus::Catalogue()).ok());
  prometheus::Registry registry;
  std::vector<std::unique_ptr<OwnerDirectory>> nodes;
  for (int i = 0; i < 2; ++i) {
    OwnerOptions o;
    o.self_url = "http://127.0.0.1:" + std::to_string(9200 + i);
    o.mode = "redirect";
    o.route_submissions = i == 0;
    o.heartbeat_interval = 100ms;
    o.member_timeout = 2s;
    nodes.push_back(std::make_unique<OwnerDirectory>(o, **bus, registry, SystemClock::Instance()));
    ASSERT_TRUE(nodes.back()->Start().ok());
  }
  ASSERT_TRUE(Await([&] { return nodes[0]->Members().size() == 2 && nodes[1]->Members().size() == 2; }, 10s));
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
