package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Exec runs a command inside the client's namespace and returns its
// output.
func (c *Client) Exec(ctx context.Context, args ...string) ([]byte, error) {
	return nsExec(ctx, c.Namespace, args...)
}

// Ping sends count echo requests to addr, one every interval, and returns
// how many were answered. An error means ping could not run (or none
// answered when count is 1).
func (c *Client) Ping(ctx context.Context, addr netip.Addr, count int, interval time.Duration) (int, error) {
	if count < 1 {
		count = 1
	}
	args := []string{"ping", "-n", "-q", "-c", strconv.Itoa(count), "-W", "1",
		"-i", strconv.FormatFloat(interval.Seconds(), 'f', 3, 64), addr.String()}
	out, err := c.Exec(ctx, args...)
	received := parsePingReceived(string(out))
	if received < 0 {
		return 0, fmt.Errorf("ping %s from %s: %w", addr, c.Name, err)
	}
	return received, nil
}

// parsePingReceived reads "N packets transmitted, M received" from ping's
// summary; -1 if absent.
func parsePingReceived(out string) int {
	for _, line := range strings.Split(out, "\n") {
		if !strings.Contains(line, "packets transmitted") {
			continue
		}
		for _, part := range strings.Split(line, ",") {
			f := strings.Fields(part)
			if len(f) == 2 && f[1] == "received" {
				n, err := strconv.Atoi(f[0])
				if err == nil {
					return n
				}
			}
		}
	}
	return -1
}

// Answer is what a pod stand-in said.
type Answer struct {
	// Node and Pod say who answered.
	Node, Pod string
	// From is the client address the pod saw (the real client for
	// externalTrafficPolicy Local, a node for Cluster to another node).
	From netip.AddrPort
	// Body is the whole answer.
	Body string
}

// parseAnswer reads a pod's "node=... pod=... client=..." answer.
func parseAnswer(body string) (Answer, error) {
	a := Answer{Body: body}
	for _, f := range strings.Fields(body) {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "node":
			a.Node = v
		case "pod":
			a.Pod = v
		case "client":
			a.From, _ = netip.ParseAddrPort(v)
		}
	}
	if a.Node == "" {
		return a, fmt.Errorf("not a lab pod's answer: %q", body)
	}
	return a, nil
}

// URL returns http://addr:port/ with IPv6 addresses bracketed.
func URL(addr netip.Addr, port int) string {
	return "http://" + net.JoinHostPort(addr.String(), strconv.Itoa(port)) + "/"
}

// Curl runs curl in the client's namespace against http://addr:port/
// (timeout 2 s) and returns which pod, on which node, answered.
func (c *Client) Curl(ctx context.Context, addr netip.Addr, port int) (Answer, error) {
	out, err := c.Exec(ctx, "curl", "-sS", "--max-time", "2", URL(addr, port))
	if err != nil {
		return Answer{}, fmt.Errorf("curl %s from %s: %w", URL(addr, port), c.Name, err)
	}
	return parseAnswer(string(out))
}

// HTTPClient returns an HTTP client whose connections start in the
// client's namespace, with a short timeout: cheaper than running curl,
// for probes every few milliseconds.
func (c *Client) HTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DialContext:       dialIn(c.Namespace),
			DisableKeepAlives: true,
		},
	}
}

// Get sends one HTTP GET to addr:port from the client's namespace with
// hc (see HTTPClient) and returns the pod's answer.
func (c *Client) Get(ctx context.Context, hc *http.Client, addr netip.Addr, port int) (Answer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, URL(addr, port), nil)
	if err != nil {
		return Answer{}, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return Answer{}, fmt.Errorf("GET %s from %s: %w", URL(addr, port), c.Name, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return Answer{}, fmt.Errorf("read answer of %s: %w", URL(addr, port), err)
	}
	return parseAnswer(string(body))
}

// Neighbor is an entry of the client's neighbour (ARP/NDP) table.
type Neighbor struct {
	Addr netip.Addr
	// MAC is empty when the address did not resolve.
	MAC string
	// State is the kernel's: REACHABLE, STALE, DELAY, PROBE, FAILED,
	// INCOMPLETE, PERMANENT...
	State string
}

// Neighbor returns the client's neighbour entry for addr; ok is false if
// there is none.
func (c *Client) Neighbor(ctx context.Context, addr netip.Addr) (n Neighbor, ok bool, err error) {
	out, err := run(ctx, "ip", "-n", c.Namespace, "-j", "neigh", "show", addr.String())
	if err != nil {
		return Neighbor{}, false, err
	}
	var raw []struct {
		Dst    string   `json:"dst"`
		LLAddr string   `json:"lladdr"`
		State  []string `json:"state"`
	}
	if err := json.Unmarshal(out, &raw); err != nil {
		return Neighbor{}, false, fmt.Errorf("parse neighbours of %s: %w", c.Name, err)
	}
	if len(raw) == 0 {
		return Neighbor{}, false, nil
	}
	return Neighbor{Addr: addr, MAC: raw[0].LLAddr, State: strings.Join(raw[0].State, ",")}, true, nil
}

// FlushNeighbors empties the client's neighbour table.
func (c *Client) FlushNeighbors(ctx context.Context) error {
	_, err := run(ctx, "ip", "-n", c.Namespace, "neigh", "flush", "all")
	return err
}

// RouteVia makes the client send traffic for addr to the node at via, as
// a router would after BGP: it lets a test reach a Service IP through one
// chosen node without any speaker. Delete it with DeleteRoute.
func (c *Client) RouteVia(ctx context.Context, addr, via netip.Addr) error {
	_, err := run(ctx, "ip", "-n", c.Namespace, "route", "replace", netip.PrefixFrom(addr, addr.BitLen()).String(), "via", via.String())
	return err
}

// DeleteRoute removes a route RouteVia added.
func (c *Client) DeleteRoute(ctx context.Context, addr netip.Addr) error {
	_, err := run(ctx, "ip", "-n", c.Namespace, "route", "del", netip.PrefixFrom(addr, addr.BitLen()).String())
	return err
}

// Monitor follows the client's neighbour table and routes (`ip monitor
// neigh route`): when a Service IP's MAC changed, for example.
func (c *Client) Monitor(ctx context.Context) (*Monitor, error) {
	return c.lab.startMonitor(ctx, c.Name, c.Namespace, "neigh", "route")
}

// MAC returns the MAC address of a node's segment link.
func (n *Node) MAC(ctx context.Context) (string, error) {
	out, err := run(ctx, "ip", "-n", n.Namespace, "-j", "link", "show", segmentLink)
	if err != nil {
		return "", err
	}
	var raw []struct {
		Address string `json:"address"`
	}
	if err := json.Unmarshal(out, &raw); err != nil || len(raw) == 0 {
		return "", fmt.Errorf("parse link of %s: %v", n.Name, err)
	}
	return raw[0].Address, nil
}

// NodeByMAC returns the node whose segment link has the MAC address mac
// (as a client's neighbour table shows it), or nil.
func (l *Lab) NodeByMAC(ctx context.Context, mac string) (*Node, error) {
	for _, n := range l.Nodes {
		m, err := n.MAC(ctx)
		if err != nil {
			return nil, err
		}
		if strings.EqualFold(m, mac) {
			return n, nil
		}
	}
	return nil, nil
}
