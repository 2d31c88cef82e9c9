// Package members is the speakers' failure detector: it tells every speaker
// which speakers are alive, so that the layer-2 election moves a dead node's
// IPs to another node in well under a second. Node readiness from the API
// server is the fallback when it does not run; that alone takes the node
// controller's grace period, tens of seconds.
//
// # The failure detector
//
// Members runs hashicorp/memberlist among the speakers: SWIM (Das, Gupta and
// Motivala, 2002) with the Lifeguard extensions (Dadgar et al., 2018). Each
// speaker probes one random peer per probe interval over UDP; a peer that does
// not ack in time is pinged indirectly through others and over TCP, then
// suspected, and declared dead when it does not refute the suspicion in time.
// Joins, suspicions, deaths and leaves spread by gossip piggybacked on the
// probes and in gossip rounds of their own, and a periodic full state exchange
// over TCP repairs what gossip missed. Members turns memberlist's member
// events into the set of live speakers, reports every change to
// Options.Notify, and joins the peers the speaker learns from the API server
// (Members.SetPeers), again every second while any of them is missing, which
// also heals a partition once it ends.
//
// # Tuning
//
// memberlist's LAN defaults (probe every second, suspicion 4 intervals and
// more) detect a crash in about 6 s: that is MetalLB's failover time, all of
// it failure detection. Members probes every 100 ms, gives a direct probe
// 50 ms, suspects for 100 ms (200 ms from a hundred speakers on) and gossips
// every 20 ms, so a crashed speaker is dropped in roughly 200-400 ms: the
// wait until a survivor probes it, the failed probe, the suspicion and the
// gossip of its death, each bounded by the interval that drives it. Measured
// on loopback, the median is about 270 ms from SIGKILL; a graceful leave is
// seen in about 15 ms. The constants beside Options give each default and
// its reason. A live speaker is declared dead only after it stopped
// answering for about 200 ms, and Lifeguard stretches the timeouts of a
// speaker that notices it is the slow one, so a busy node does not declare
// healthy peers dead; a CPU limit that throttles the speaker for that long
// would. The cost is about ten small UDP probes and acks per second per
// speaker.
//
// # Encryption
//
// Gossip is encrypted and authenticated with AES-GCM when Options.SecretKey
// is set; a speaker without the key, or with another, is never let in, and
// every packet is labelled "ironlb" so that no other memberlist cluster
// (MetalLB's, Consul's) is ever merged with. The speaker reads the key from
// the Secret ironlb-memberlist, key secretkey, in ironlb's namespace
// (ironlb-system), as MetalLB's speaker reads key secretkey of its Secret
// memberlist. The value is the raw key and must be 16, 24 or 32 bytes long
// (AES-128, -192, -256), for example:
//
//	kubectl -n ironlb-system create secret generic ironlb-memberlist \
//	  --from-literal=secretkey="$(openssl rand -base64 24)"
//
// (32 base64 characters: a 32-byte AES-256 key.) A MetalLB memberlist Secret
// holds a longer value and is not accepted as it is.
//
// # Leaving
//
// When the context given to Run is done, the member leaves gracefully before
// it shuts down: it gossips that it left, and the others drop it as soon as
// they hear it, within a gossip interval (20 ms), instead of detecting its
// death. Run returns once the leave has gone out, or after LeaveTimeout (1 s)
// if it cannot, and any join in flight has ended. Notify is not called once
// the context is done, so a speaker stopping on SIGTERM keeps answering for
// its IPs while the leave goes out; it stops its ARP and NDP responders only
// after Run has returned, by which time the next owners have taken the IPs
// over.
package members
