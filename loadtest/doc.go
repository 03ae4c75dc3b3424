// Package loadtest answers "how many devices and webhooks per second can one
// relay node carry, at what latency and memory", and what a cluster of nodes
// costs and loses while its nodes restart: it runs the relay as its own
// process (or several joined by a NATS server), connects a swarm of
// simulated devices to it, sends webhooks with vegeta, and accounts for
// every message.
//
// The suite is a module of its own (loadtest/go.mod), as `nats bench` lives
// in natscli and not in nats-server: vegeta and what only the suite needs
// stay out of the relay's go.mod. It is built against the relay beside it
// (a replace of ../), whose internal packages it may import, being under
// the same path.
//
// One run (Run, or `make loadtest`, or cmd/loadtest) is:
//
//  1. The relay under test starts as a child process on loopback (or
//     Config.Target names a running one), so that its CPU and RSS are its
//     own and sampled from /proc (Sampler), beside this process's (the
//     generator) and the rest of the host's.
//  2. The Swarm connects Config.Devices devices over raw QUIC, WebTransport
//     (256 to a shared UDP socket), WebSocket, or as stock AWTRIX 3 clocks
//     on MQTT (Config.WebTransportShare, Config.WebSocketShare,
//     Config.MQTTShare; the clocks are a lean client of their own,
//     mqttclient.go), at Config.ConnectRate. Each has its own token and
//     acks like a real clock, optionally slowly.
//  3. The attack: vegeta POSTs realistic AWTRIX bodies (notifications and
//     apps of 50-300 bytes, 10% full-frame bitmaps of 1.6-2.4 KB) to
//     /cloud?mode=MODE&token=TOKEN&lt=ID, spread over the tokens uniformly,
//     Zipf-skewed or all on one hot device, at a constant rate or, for
//     capacity, in steps until the p99 breaks the SLO. Connections are kept
//     alive and opened before the attack, as a webhook sender keeps them.
//  4. The ledger: every webhook carries a unique id, in the URL (which the
//     relay ignores) and first in its body ("lt":[ID,DEVICE]). Devices count
//     what they receive; a 200 whose message never arrived is lost, one
//     that arrived twice duplicated, one at another device misrouted. Any
//     of the three fails the run.
//  5. The baseline: the same attack against a bare fasthttp TLS handler in
//     its own process, so that relay minus baseline is the relay's cost
//     and the generator's own ceiling on this machine is known.
//  6. The floors, with Config.Floors: the same swarm size and attack
//     against bare quic-go, webtransport-go or WebSocket device servers with a
//     fasthttp frontend (floor.go), each in its own process (FloorMain), so
//     that relay minus floor is the relay's own machinery (Summary.Costs).
//  7. The Summary, written with WriteReport (summary.json, report.md,
//     chart.svg, plot.html) and printed with PrintTable.
//
// The scenarios (Scenarios) are fanin, hot, storm, churn, slow, capacity,
// idle, cluster, soak, fleet and mqttstorm. Each is a file of its own (fanin.go,
// hot.go, ...) behind one interface, with its defaults, its run and its
// pass criteria; scenario.go lists them, and Config documents what each
// changes. Most run load: the relay, the swarm, the scenario's attack
// (steady, or capacity's ramp, with churn or restarts beside it), the
// ledger, the floors and the baseline; idle and fleet run on their own.
// Fleet is a realistic fleet, mostly idle with keep-alives and a webhook
// per device every 10 minutes, measured per 1,000 devices and projected
// linearly to larger fleets. Idle with MQTT clocks, and mqttstorm
// (clocks logging in at once), measure Debian's mosquitto with the same
// clocks in the same run (mosquitto.go), beside the relay. Config.Pin puts the servers under test and
// this process on CPUs of their own. Everything talks to loopback only,
// and every loop is bounded in count and time.
//
// The cluster scenario is fanin over Config.Nodes relay processes sharing
// one development CA, joined by a NATS server that this binary serves in a
// process of its own (NATSMain), so that each node's CPU and memory and the
// NATS server's are sampled apart. Device i starts on node i mod Nodes;
// each webhook goes to a node picked at random among those in rotation
// (frontends). The targeter records, per message id, the webhook's node and
// the node of its device's session at that moment, so that the deliveries
// split into local and cross-node ones with their own latencies. Devices
// sent away with GOAWAY move make-before-break: they log in on the next node
// in an order of their own, then leave.
//
// The soak scenario adds churn (reconnects and rotations) and a rolling
// restart (restarter): every Config.RestartEvery the next node is taken out
// of rotation, drained with SIGTERM once its webhooks are answered, started
// again on the same ports and put back once /readyz answers. Answers other
// than 2xx are counted per restart window by status and code, and each is
// explained by what its device did meanwhile (the swarm's event log): churn
// (a hang-up or a rotation while the webhook was in flight) or not.
//
// The relay's per-source and per-token rate limits are turned off for the
// run (the whole swarm and every caller share one loopback address); the
// Summary's RelayCommand shows the flags the relay ran with.
package loadtest
