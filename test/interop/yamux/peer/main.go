// A yamux peer built from the reference implementation (hashicorp/yamux), for the interop tests.
//
//	peer server                          listen on 127.0.0.1:0, print "LISTEN <addr>", echo every stream
//	peer client <addr> <streams> <bytes> open <streams> streams, send <bytes> on each, check the echo, print "OK"
package main

import (
	"bytes"
	"fmt"
	"io"
	"io/ioutil"
	"math/rand"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/yamux"
)

func config() *yamux.Config {
	c := yamux.DefaultConfig()
	c.LogOutput = ioutil.Discard
	c.ConnectionWriteTimeout = 60 * time.Second
	return c
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}

func server() {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail("listen: %v", err)
	}
	fmt.Printf("LISTEN %s\n", l.Addr())
	for {
		conn, err := l.Accept()
		if err != nil {
			fail("accept: %v", err)
		}
		go func() {
			session, err := yamux.Server(conn, config())
			if err != nil {
				fail("session: %v", err)
			}
			for {
				st, err := session.AcceptStream()
				if err != nil {
					return
				}
				go func() {
					// Echo until the peer's FIN, then FIN back: half-close both ways.
					io.Copy(st, st)
					st.Close()
				}()
			}
		}()
	}
}

// payload is the deterministic content of stream i.
func payload(i, size int) []byte {
	b := make([]byte, size)
	rand.New(rand.NewSource(int64(i) + 1)).Read(b)
	return b
}

func client(addr string, streams, size int) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		fail("dial: %v", err)
	}
	session, err := yamux.Client(conn, config())
	if err != nil {
		fail("session: %v", err)
	}
	if _, err := session.Ping(); err != nil {
		fail("ping: %v", err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, streams)
	for i := 0; i < streams; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			st, err := session.OpenStream()
			if err != nil {
				errs <- fmt.Errorf("open %d: %v", i, err)
				return
			}
			want := payload(i, size)
			go st.Write(want)
			got := make([]byte, size)
			// This yamux version reads EOF once its own side is closed, so read everything before Close.
			if _, err := io.ReadFull(st, got); err != nil {
				errs <- fmt.Errorf("stream %d read: %v", i, err)
				return
			}
			if !bytes.Equal(got, want) {
				errs <- fmt.Errorf("stream %d: echo differs", i)
				return
			}
			st.Close()
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		fail("%v", err)
	}
	session.Close()
	fmt.Println("OK")
}

func main() {
	if len(os.Args) >= 2 && os.Args[1] == "server" {
		server()
		return
	}
	if len(os.Args) == 5 && os.Args[1] == "client" {
		n, err1 := strconv.Atoi(os.Args[3])
		size, err2 := strconv.Atoi(os.Args[4])
		if err1 != nil || err2 != nil {
			fail("bad numbers")
		}
		client(os.Args[2], n, size)
		return
	}
	fail("usage: peer server | peer client <addr> <streams> <bytes>")
}
