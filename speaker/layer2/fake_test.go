package layer2

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"

	"github.com/ironlb/ironlb/config"
)

// events is a log of what fake Responders were asked to do, shared by all
// the Responders of one fakeFactory.
type events struct {
	mu  sync.Mutex
	log []string
}

func (e *events) add(format string, args ...any) {
	e.mu.Lock()
	e.log = append(e.log, fmt.Sprintf(format, args...))
	e.mu.Unlock()
}

// take returns the events so far and forgets them.
func (e *events) take() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := e.log
	e.log = nil
	return out
}

// count returns how many logged events so far start with prefix.
func (e *events) count(prefix string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, s := range e.log {
		if strings.HasPrefix(s, prefix) {
			n++
		}
	}
	return n
}

// fakeFactory opens fakeResponders.
type fakeFactory struct {
	ev *events

	mu         sync.Mutex
	openErr    map[string]error // interface → error of Open
	responders map[Link]*fakeResponder
}

func newFakeFactory() *fakeFactory {
	return &fakeFactory{ev: &events{}, openErr: map[string]error{}, responders: map[Link]*fakeResponder{}}
}

func (f *fakeFactory) Open(ifname string, fam config.Family) (Responder, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.openErr[ifname]; err != nil {
		f.ev.add("open-failed %s %s", ifname, fam)
		return nil, err
	}
	f.ev.add("open %s %s", ifname, fam)
	r := &fakeResponder{name: ifname + "/" + fam.String(), ev: f.ev, ips: map[netip.Addr]bool{}, fail: make(chan error, 1), running: make(chan struct{})}
	f.responders[Link{ifname, fam}] = r
	return r, nil
}

func (f *fakeFactory) setOpenErr(ifname string, err error) {
	f.mu.Lock()
	f.openErr[ifname] = err
	f.mu.Unlock()
}

func (f *fakeFactory) responder(l Link) *fakeResponder {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.responders[l]
}

// fakeResponder logs what it is asked to do.
type fakeResponder struct {
	name    string
	ev      *events
	fail    chan error // makes Run return the error
	running chan struct{}

	mu     sync.Mutex
	ips    map[netip.Addr]bool
	closed bool
	addErr error
}

func (r *fakeResponder) Run(ctx context.Context) error {
	r.ev.add("run %s", r.name)
	close(r.running)
	select {
	case <-ctx.Done():
		return nil
	case err := <-r.fail:
		return err
	}
}

// setAddErr makes Add fail with err from now on; nil lets it succeed.
func (r *fakeResponder) setAddErr(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.addErr = err
}

func (r *fakeResponder) Add(ip netip.Addr) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.addErr != nil {
		return r.addErr
	}
	r.ips[ip] = true
	r.ev.add("add %s %s", r.name, ip)
	return nil
}

func (r *fakeResponder) Remove(ip netip.Addr) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.ips, ip)
	r.ev.add("remove %s %s", r.name, ip)
	return nil
}

func (r *fakeResponder) Gratuitous(ip netip.Addr) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.ips[ip] {
		r.ev.add("gratuitous-refused %s %s", r.name, ip)
		return errors.New("not answering")
	}
	r.ev.add("gratuitous %s %s", r.name, ip)
	return nil
}

func (r *fakeResponder) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errors.New("closed twice")
	}
	r.closed = true
	clear(r.ips)
	r.ev.add("close %s", r.name)
	return nil
}
