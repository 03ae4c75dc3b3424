package relaytest

import (
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
)

// TCPOnlyFront stands in for a network that lets no UDP through: it
// forwards TCP on a new loopback port to addr, and on the same port number
// nothing listens for UDP (the kernel answers ICMP port unreachable) or,
// with blackhole, a socket reads and drops every datagram. hole is that
// socket (nil without blackhole), for a test that opens UDP again with
// ForwardUDP. Everything ends with the test.
func TCPOnlyFront(tb testing.TB, addr string, blackhole bool) (front string, hole *net.UDPConn) {
	tb.Helper()
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		var hole *net.UDPConn
		if blackhole {
			if hole, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}); err != nil {
				ln.Close()
				continue // that UDP port is taken: another pair
			}
			go func() {
				buf := make([]byte, 2048)
				for {
					if _, _, err := hole.ReadFrom(buf); err != nil {
						return
					}
				}
			}()
		}
		var conns sync.WaitGroup
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				conns.Go(func() { pipe(c, addr) })
			}
		}()
		tb.Cleanup(func() {
			ln.Close()
			if hole != nil {
				hole.Close()
			}
			conns.Wait()
		})
		return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), hole
	}
	tb.Fatal("relaytest: no loopback port free on both TCP and UDP")
	return "", nil
}

// ForwardUDP relays datagrams arriving on front to addr and the answers
// back, for one client at a time: UDP gets through again. It ends with the
// test.
func ForwardUDP(tb testing.TB, front *net.UDPConn, addr string) {
	tb.Helper()
	ra, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	up, err := net.DialUDP("udp", nil, ra)
	if err != nil {
		tb.Fatal(err)
	}
	var mu sync.Mutex
	var client net.Addr
	var wg sync.WaitGroup
	wg.Go(func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := front.ReadFrom(buf)
			if err != nil {
				return
			}
			mu.Lock()
			client = from
			mu.Unlock()
			up.Write(buf[:n])
		}
	})
	wg.Go(func() {
		buf := make([]byte, 2048)
		for {
			n, err := up.Read(buf)
			if err != nil {
				return
			}
			mu.Lock()
			to := client
			mu.Unlock()
			if to != nil {
				front.WriteTo(buf[:n], to)
			}
		}
	})
	tb.Cleanup(func() { front.Close(); up.Close(); wg.Wait() })
}

// pipe copies c to and from a new connection to addr until either ends.
func pipe(c net.Conn, addr string) {
	defer c.Close()
	up, err := net.Dial("tcp", addr)
	if err != nil {
		return
	}
	defer up.Close()
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, c); done <- struct{}{} }()
	go func() { io.Copy(c, up); done <- struct{}{} }()
	<-done
}
