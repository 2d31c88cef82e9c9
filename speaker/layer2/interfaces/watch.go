package interfaces

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// A Watcher reports the links of a network namespace, with their
// addresses, at start and after every change netlink announces.
type Watcher struct {
	// Namespace is the network namespace watched; netns.None() (what
	// NewWatcher sets) is the namespace of the process.
	Namespace netns.NsHandle

	notify func([]Link)
}

// NewWatcher returns a Watcher of the process's network namespace that
// calls notify with every link, sorted by index, at start and whenever the
// links or their addresses change. Notify is called from Run's goroutine,
// one call at a time, and only when something changed.
func NewWatcher(notify func([]Link)) *Watcher {
	return &Watcher{Namespace: netns.None(), notify: notify}
}

// Run watches until ctx is done, when it returns nil, or netlink fails.
func (w *Watcher) Run(ctx context.Context) error {
	done := make(chan struct{})
	linkCh := make(chan netlink.LinkUpdate, 64)
	addrCh := make(chan netlink.AddrUpdate, 64)
	errCh := make(chan error, 2)
	onErr := func(err error) {
		select {
		case errCh <- err:
		default:
		}
	}
	ns := w.Namespace
	// The subscriptions send without watching done: once done is closed,
	// drain each channel until its subscription closes it, so that the
	// subscription can end.
	var drains []func()
	defer func() {
		close(done)
		for _, d := range drains {
			go d()
		}
	}()
	if err := netlink.LinkSubscribeWithOptions(linkCh, done, netlink.LinkSubscribeOptions{Namespace: &ns, ErrorCallback: onErr}); err != nil {
		return fmt.Errorf("subscribe to link changes: %w", err)
	}
	drains = append(drains, func() {
		for range linkCh {
		}
	})
	if err := netlink.AddrSubscribeWithOptions(addrCh, done, netlink.AddrSubscribeOptions{Namespace: &ns, ErrorCallback: onErr}); err != nil {
		return fmt.Errorf("subscribe to address changes: %w", err)
	}
	drains = append(drains, func() {
		for range addrCh {
		}
	})
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("open netlink: %w", err)
	}
	// Closing a netlink socket can block in the kernel for as long as
	// the node's routing table keeps changing (tens of seconds while a
	// router installs 10,000 routes): close it without holding up the
	// shutdown.
	defer func() { go h.Close() }()

	var last []Link
	report := func() error {
		links, err := List(h)
		if err != nil {
			return err
		}
		if last != nil && slices.EqualFunc(last, links, equalLinks) {
			return nil
		}
		last = links
		w.notify(links)
		return nil
	}
	if err := report(); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errCh:
			return fmt.Errorf("watch links: %w", err)
		case _, ok := <-linkCh:
			if !ok {
				return errors.New("watch links: netlink subscription ended")
			}
		case _, ok := <-addrCh:
			if !ok {
				return errors.New("watch addresses: netlink subscription ended")
			}
		}
		drain(linkCh, addrCh)
		if err := report(); err != nil {
			return err
		}
	}
}

// drain empties the channels of the updates already queued: one listing
// answers them all.
func drain(linkCh <-chan netlink.LinkUpdate, addrCh <-chan netlink.AddrUpdate) {
	for {
		select {
		case _, ok := <-linkCh:
			if !ok {
				return
			}
		case _, ok := <-addrCh:
			if !ok {
				return
			}
		default:
			return
		}
	}
}

// List returns the links of the namespace h works in, with their
// addresses, sorted by index.
func List(h *netlink.Handle) ([]Link, error) {
	var (
		nlLinks []netlink.Link
		nlAddrs []netlink.Addr
		err     error
	)
	// A dump interrupted by a concurrent change is retried.
	for range 5 {
		nlLinks, err = h.LinkList()
		if err == nil {
			nlAddrs, err = h.AddrList(nil, netlink.FAMILY_ALL)
		}
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("list links and addresses: %w", err)
	}
	byIndex := make(map[int][]netip.Prefix)
	for _, a := range nlAddrs {
		if a.IPNet == nil {
			continue
		}
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		bits, _ := a.Mask.Size()
		byIndex[a.LinkIndex] = append(byIndex[a.LinkIndex], netip.PrefixFrom(ip.Unmap(), bits))
	}
	out := make([]Link, 0, len(nlLinks))
	for _, nl := range nlLinks {
		attrs := nl.Attrs()
		addrs := byIndex[attrs.Index]
		slices.SortFunc(addrs, netip.Prefix.Compare)
		out = append(out, Link{
			Name:        attrs.Name,
			Index:       attrs.Index,
			Kind:        nl.Type(),
			MasterIndex: attrs.MasterIndex,
			Up:          attrs.Flags&net.FlagUp != 0 && (attrs.OperState == netlink.OperUp || attrs.OperState == netlink.OperUnknown),
			Loopback:    attrs.Flags&net.FlagLoopback != 0,
			NoARP:       attrs.RawFlags&unix.IFF_NOARP != 0,
			Addrs:       addrs,
		})
	}
	slices.SortFunc(out, func(a, b Link) int { return a.Index - b.Index })
	return out, nil
}

// equalLinks reports whether a and b are the same.
func equalLinks(a, b Link) bool {
	return a.Name == b.Name && a.Index == b.Index && a.Kind == b.Kind && a.MasterIndex == b.MasterIndex &&
		a.Up == b.Up && a.Loopback == b.Loopback && a.NoARP == b.NoARP && slices.Equal(a.Addrs, b.Addrs)
}
