// Package awtrix forwards relay messages to an AWTRIX clock's local HTTP API.
//
// The device agent runs next to the clock. Each webhook reaches it as a mode
// (one of the AWTRIX 2 endpoint names: draw, basics, app, settings, notify,
// customapp, temporaryapp) and a JSON body; a Forwarder turns that into one
// HTTP POST to the clock and turns the clock's answer into the JSON reply the
// relay hands back to the webhook caller.
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
// it). Note that AWTRIX 2's temporaryapp "lifetime" counts app loops while
// AWTRIX 3's counts seconds without an update; it is passed on unchanged.
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
package awtrix
