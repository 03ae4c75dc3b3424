// Package mqtt lets stock AWTRIX clocks reach the relay with the MQTT
// client their firmware already has: the clock takes the relay for its
// broker, logs in with its device token as the password, and each webhook
// for that token becomes one PUBLISH under the clock's own topic prefix.
//
// The relay is not a broker. It speaks MQTT 3.1.1 (protocol level 4) only,
// keeps nothing (no retained messages, no sessions, no will), sends QoS 0
// only and takes no QoS 2, lets no client publish to another, and grants a
// clock only the subscriptions of its own prefix. Each connection is a
// device session of package session (Server.Join): the same device cap,
// takeover rules (a second CONNECT with the token, over any transport,
// replaces the first), router binding, cluster and drain as every other
// transport. MQTT 3.1.1 cannot say go-away, so a drain closes each clock's
// connection at a random time within the reconnect spread.
//
// # Dialects
//
// What a clock subscribes to tells its firmware (awtrix.DialectOf): AWTRIX
// 3 subscribes to P/notify, P/custom/#, P/sendscreen and some twenty more;
// AWTRIX NG to P/cmd/#. The first such SUBSCRIBE fixes the dialect and the
// prefix P; a filter outside them gets SUBACK 0x80. awtrix.PlanMQTT maps a
// webhook's mode and body to the dialect's topic, with the agent's own
// checks and AWTRIX 2 translations.
//
// # Confirmations
//
// AWTRIX NG answers every command on <topic>/result: {"ok":true} is the
// webhook's 200, an error its 400 with the clock's error. AWTRIX 3 answers
// nothing over MQTT, but it handles its messages in order, so with
// --mqtt-ack screen (the default) the relay sends P/sendscreen after the
// command and answers 200 when the clock's P/screen arrives; with
// --mqtt-ack sent, once the command is written. Reads are answered from
// what the clock publishes, held in memory only while it is connected:
// stats from its latest P/stats (NG: P/state/device), screen by a
// sendscreen round trip. Every answer names the last hop in the
// Relay-Path header (mqtt-plain, mqtt-tls). docs/PROTOCOL.md §10 has the
// packets; docs/SECURITY.md what plain MQTT exposes.
package mqtt
