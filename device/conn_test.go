package device_test

import (
	"context"
	"errors"
	"testing"

	"github.com/pixelrelay/relay/device"
	"github.com/pixelrelay/relay/wire"
)

func TestServeReturnsGoAwayOnRelayShutdown(t *testing.T) {
	r := startRelay(t)
	tok := wire.NewToken()
	c, err := device.Dial(context.Background(), r.Addr, tok, device.Options{TLS: r.TLS, Agent: "device-test"})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.Close()
	h, got := recorder()
	served := make(chan error, 1)
	go func() { served <- c.Serve(context.Background(), h) }()
	wantStatus(t, r, tok, 200)
	recv(t, got, "the message")

	r.Stop()
	err = recv(t, served, "Serve to return after the relay shut down")
	var ga *device.GoAwayError
	if !errors.As(err, &ga) {
		t.Fatalf("Serve = %v; want a *GoAwayError", err)
	}
	if ga.Reason != wire.ReasonDraining || ga.ReconnectAfter < 0 || ga.ReconnectAfter >= reconnectSpread {
		t.Fatalf("go-away %+v; want reason %v and a delay in [0, %v)", ga.GoAway, wire.ReasonDraining, reconnectSpread)
	}
	if ga.Message == "" {
		t.Fatalf("go-away %+v carries no message from the relay", ga.GoAway)
	}
	// Serve hung up itself.
	recv(t, c.Context().Done(), "the connection to close")
}

func TestServeReturnsOnCancel(t *testing.T) {
	r := startRelay(t)
	tok := wire.NewToken()
	c, err := device.Dial(context.Background(), r.Addr, tok, device.Options{TLS: r.TLS})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.Close()
	h, _ := recorder()
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- c.Serve(ctx, h) }()
	wantStatus(t, r, tok, 200)
	cancel()
	if err := recv(t, served, "Serve to return after cancel"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Serve = %v; want context.Canceled", err)
	}
	recv(t, c.Context().Done(), "the connection to close")
	// The relay forgets the device at once... or as soon as it sees the
	// close; either way it never answers 200 again.
	if status, _ := r.Post(t, "notify", tok, `{}`); status == 200 {
		t.Fatal("webhook reached a device whose Serve returned")
	}
}
