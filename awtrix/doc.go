// Package awtrix forwards relay messages to an AWTRIX clock's local HTTP API,
// and plans them for a clock that talks MQTT to the relay.
//
// The device agent runs next to the clock. Each webhook reaches it as a mode
// (one of wire.Modes: AWTRIX 2's endpoint names, draw, basics, app, settings,
// notify, customapp, temporaryapp, and AWTRIX 3's) and a JSON body; a
// Forwarder turns that into one HTTP call to the clock and turns the clock's
// answer into the JSON reply the relay hands back to the webhook caller.
// PlanMQTT turns the same message into one MQTT PUBLISH for a clock whose
// broker is the relay (see MQTT below).
//
// # AWTRIX 2 (API version 2)
//
// AWTRIX 2.0's Java host has an endpoint for every mode, so the body goes
// through unchanged:
//
//	<mode>        POST {base}/api/v3/<mode>           body as is
//
// # AWTRIX 3 (API version 3)
//
// AWTRIX 3 has a different API; the message is mapped onto it:
//
//	notify        POST /api/notify                    body as is
//	settings      POST /api/settings                  body as is (keys are not renamed: AWTRIX 3 wants BRI, not Brightness)
//	app           POST /api/custom?name=<body.name>   body as is
//	customapp     POST /api/custom?name=<body.name>   body as is
//	temporaryapp  POST /api/custom?name=<body.name>   body as is
//	              {"remove":"X"} (no name)         -> POST /api/custom?name=X, empty body (deletes the app)
//	basics        {"power":bool}                   -> POST /api/power {"power":bool}
//	              {"switchTo":"X"}                 -> POST /api/switch {"name":"X"}
//	              {"app":"next"}                   -> POST /api/nextapp, empty body
//	              {"app":"previous"|"prev"|"back"} -> POST /api/previousapp, empty body
//	              anything else                    -> 400 "unsupported", the clock is not called
//	draw          POST /api/notify {"draw":[...]}     AWTRIX 2 draw commands translated (see draw.go)
//
// A name is required for the custom-app modes (400 "bad_request" without
// it). AWTRIX 2's temporaryapp "lifetime" counts app loops while AWTRIX 3's
// counts seconds: the agent reads the clock's loop and ATIME to convert it.
//
// # Replies
//
// Every reply is a JSON object built with encoding/json:
//
//	200 {"ok":true,"clock_status":N,"clock_reply":R}                      clock answered 2xx
//	502 {"error":"clock answered N","code":"clock_error","clock_status":N,"clock_reply":R}
//	502 {"error":"clock unreachable","code":"clock_unreachable"}          refused, timeout, reset
//	400 {"error":"...","code":"bad_request"}                              bad JSON, unknown mode, missing name
//	400 {"error":"...","code":"unsupported"}                              no AWTRIX 3 equivalent
//
// R is the clock's body (read up to 64 KiB) as JSON when it is valid JSON and
// as a JSON string otherwise; "clock_reply_truncated":true marks a body cut
// at the limit. errors.go holds the one table from outcome to status and code.
//
// # MQTT
//
// A stock clock can use the relay as its MQTT broker. DialectOf tells from
// its SUBSCRIBEs which firmware it runs and its topic prefix P; PlanMQTT maps
// a message to one Command: a PUBLISH to P/<topic>, and/or the state topic
// P/<state> whose publish answers it. The relay sends it and answers; the
// errors are the agent's (ErrorReply). A PUBLISH over MaxClockPacket (8192
// bytes, PubSubClient's buffer in both firmwares, which drops a larger
// packet silently) is refused with 413 "too_large_for_clock". Disruptive
// commands are planned and marked; the relay decides whether to send them.
//
// AWTRIX 3 (Blueforcer/awtrix3, src/MQTTManager.cpp) subscribes to
// P/notify, P/custom/#, P/sendscreen and more, and takes the same bodies on
// its topics as on its HTTP API. A message goes through exactly the checks
// and translations of the Forwarder (plan3, which both share; erase,
// resetSettings and doupdate are not refused there but planned and marked);
// the HTTP call it becomes is then a topic:
//
//	HTTP call                        topic below P        note
//	POST /api/notify                 notify               notify, draw
//	POST /api/notify/dismiss         notify/dismiss       dismiss
//	POST /api/custom?name=X          custom/X             custom, app, customapp, temporaryapp; empty deletes; X without + #
//	POST /api/power                  power                power, basics' power
//	POST /api/switch                 switch               switch, basics' switchTo
//	POST /api/nextapp                nextapp              nextapp, basics' app next
//	POST /api/previousapp            previousapp          previousapp, basics' app back
//	POST /api/indicator1..3          indicator1..3
//	POST /api/moodlight              moodlight
//	POST /api/sound                  sound                sound, basics' soundfile
//	POST /api/rtttl, /api/r2d2       rtttl, r2d2          plain text
//	POST /api/sleep                  sleep                Disruptive
//	POST /api/reboot                 reboot               Disruptive
//	POST /api/settings               settings             Disruptive (a write)
//	POST /api/apps                   apps                 Disruptive (a write; basics' enable, disable)
//	POST /api/doupdate               doupdate             Disruptive
//	GET  /api/stats                  State stats          stats, basics' get version, uptime, powerState (published every 10 s)
//	GET  /api/effects                State stats/effects  (published at connect)
//	GET  /api/transitions            State stats/transitions
//	GET  /api/screen                 sendscreen, then State screen
//	anything else                    400 "unsupported"    reorder, erase, resetSettings, loop, apps and
//	                                                      settings without a body, basics' appList and get
//	                                                      settings, appList, installedApps
//
// The body is checked first, as over HTTP: a reorder with a wrong body is a
// 400 "bad_request", with a right one "unsupported".
//
// A temporaryapp's lifetime (AWTRIX 2's loops to AWTRIX 3's seconds) needs
// the clock's loop and ATIME, which AWTRIX 3 does not publish:
// MQTTOptions.Read may answer them, else AWTRIX 3's defaults stand in.
//
// AWTRIX NG (Blueforcer/awtrix-ng, docs/reference/mqtt.md) subscribes to
// P/cmd/# and answers every command on <topic>/result. Its bodies are its
// own, not AWTRIX 3's, and pass unchanged; only the outer form is checked:
//
//	notify           cmd/notify                a JSON object
//	dismiss          cmd/notify/dismiss        no body
//	custom + name=X  cmd/apps/pushed/X         X is [A-Za-z0-9_-]{1,32}; an object, an array, or empty / {} (delete)
//	switch           cmd/apps/switch           {"name":...}; the name alone becomes {"name": NAME}
//	nextapp          cmd/apps/next
//	previousapp      cmd/apps/previous
//	reorder          cmd/apps/order            {"order":[...],"disabled":[...]}; Disruptive
//	settings         cmd/settings              an object; Disruptive. No body: State state/settings
//	resetSettings    cmd/settings/reset        Disruptive
//	power            cmd/display               {"power":bool,...}; true/false alone becomes {"power":...}
//	moodlight        cmd/display/moodlight     an object; empty is off
//	indicator1..3    cmd/indicators/1..3       an object; empty is off
//	sound            cmd/audio/play            NG's play object; a name alone becomes {"sound": NAME}
//	rtttl            cmd/audio/play            {"rtttl": STRING}, the string given as for AWTRIX 3
//	sleep            cmd/device/sleep          {"durationMs":...}; Disruptive
//	reboot           cmd/device/reboot         Disruptive
//	stats            State state/device
//	screen           cmd/screen/get, then State state/screen
//	effects          State state/capabilities, Field effects
//	transitions      State state/capabilities, Field transitions
//	anything else    400 "unsupported": draw, basics, app, customapp, temporaryapp (AWTRIX 2
//	                 bodies), loop, apps, r2d2, erase, doupdate
package awtrix
