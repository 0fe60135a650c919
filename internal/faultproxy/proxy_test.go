package faultproxy

import (
	"bufio"
	"net"
	"testing"
	"time"
)

// echoServer answers every line with the same line.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := c.Write([]byte(line)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func roundTrip(c net.Conn, timeout time.Duration) (string, error) {
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return "", err
	}
	return bufio.NewReader(c).ReadString('\n')
}

func TestModes(t *testing.T) {
	p, err := Start(echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got, err := roundTrip(c, 2*time.Second); err != nil || got != "ping\n" {
		t.Fatalf("pass: %q %v", got, err)
	}

	p.Blackhole()
	if _, err := roundTrip(c, 200*time.Millisecond); err == nil {
		t.Fatal("black-holed connection answered")
	}
	p.Restore()
	c2, _ := net.Dial("tcp", p.Addr())
	defer c2.Close()
	if got, err := roundTrip(c2, 2*time.Second); err != nil || got != "ping\n" {
		t.Fatalf("after restore: %q %v", got, err)
	}

	p.Cut()
	if _, err := roundTrip(c2, 2*time.Second); err == nil {
		t.Fatal("cut connection answered")
	}
	if c3, err := net.Dial("tcp", p.Addr()); err == nil {
		if _, err := roundTrip(c3, 2*time.Second); err == nil {
			t.Fatal("new connection answered while cut")
		}
		c3.Close()
	}
	p.Restore()
	p.SetDelay(50 * time.Millisecond)
	c4, _ := net.Dial("tcp", p.Addr())
	defer c4.Close()
	start := time.Now()
	if got, err := roundTrip(c4, 2*time.Second); err != nil || got != "ping\n" {
		t.Fatalf("delayed: %q %v", got, err)
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Fatalf("round trip took %s, want at least two delays of 50ms", d)
	}
}
