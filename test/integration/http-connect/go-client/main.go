// A Go HTTP-CONNECT client that dials the way kube-apiserver's egress selector does in HTTPConnect mode:
// write `CONNECT addr HTTP/1.1` with `Host: 127.0.0.1`, read the answer with net/http's parser, refuse any
// status but 200 and any byte buffered past the answer, then use the raw connection.
//
// Usage: go run main.go <proxy host:port | unix socket path> <target host:port> <message>
// Prints `status=<code>` and, on 200, `echo=<what came back>`; on an error answer `body=<body>`.
package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

func main() {
	proxy, target, message := os.Args[1], os.Args[2], os.Args[3]
	network := "tcp"
	if strings.HasPrefix(proxy, "/") {
		network = "unix"
	}
	conn, err := net.DialTimeout(network, proxy, 10*time.Second)
	if err != nil {
		fail("dial proxy: %v", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprintf(conn, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, "127.0.0.1")
	reader := bufio.NewReader(conn)
	res, err := http.ReadResponse(reader, nil)
	if err != nil {
		fail("read response: %v", err)
	}
	fmt.Printf("status=%d\n", res.StatusCode)
	if res.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(res.Body)
		fmt.Printf("body=%s\n", body)
		return
	}
	if n := reader.Buffered(); n > 0 {
		fail("unexpected %d bytes of buffered data after the 200", n)
	}
	if _, err := conn.Write([]byte(message)); err != nil {
		fail("write: %v", err)
	}
	echo := make([]byte, len(message))
	if _, err := io.ReadFull(conn, echo); err != nil {
		fail("read echo: %v", err)
	}
	fmt.Printf("echo=%s\n", echo)
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}
