package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"time"

	"github.com/flotilla-go/flotilla/discovery"
	"github.com/flotilla-go/flotilla/examples/fleet/launch"
)

// throughput measures requests through nginx → gateway → agent-geo, every
// hop on a unix socket but the first, with wrk for 10 s: requests per
// second and p99 latency. It needs nginx and wrk (Debian packages nginx and
// wrk) and says so when they are missing.
func throughput(ctx context.Context, f *launch.Fleet, dir string, r *Report) error {
	nginx, err1 := lookTool("nginx")
	wrk, err2 := lookTool("wrk")
	if err1 != nil || err2 != nil {
		fmt.Println("throughput: skipped: needs nginx and wrk (apt-get install nginx wrk)")
		return nil
	}
	key, err := f.NewKey(ctx)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dir = filepath.Join(dir, "nginx")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	conf, err := discovery.NginxConfig(f.Registry(), discovery.NginxOptions{Listen: "127.0.0.1:" + strconv.Itoa(port), Root: "agent-gateway", Keepalive: 64})
	if err != nil {
		return err
	}
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;"
	}
	main := fmt.Sprintf(`%s
daemon off;
worker_processes 1;
pid %[2]s/nginx.pid;
error_log stderr error;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path %[2]s/body; proxy_temp_path %[2]s/proxy; fastcgi_temp_path %[2]s/fastcgi;
    uwsgi_temp_path %[2]s/uwsgi; scgi_temp_path %[2]s/scgi;
    include %[2]s/flotilla.conf;
}
`, user, dir)
	if err := os.WriteFile(filepath.Join(dir, "flotilla.conf"), conf, 0o640); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(main), 0o640); err != nil {
		return err
	}
	cmd := exec.Command(nginx, "-e", "stderr", "-p", dir, "-c", filepath.Join(dir, "nginx.conf"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); cmd.Wait() }()
	url := fmt.Sprintf("http://127.0.0.1:%d/v1/agent-geo/geo/192.0.2.1", port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nginx did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	out, err := exec.CommandContext(ctx, wrk, "-t2", "-c32", "-d10s", "--latency", "-H", "Authorization: Bearer "+key, url).CombinedOutput()
	if err != nil {
		return fmt.Errorf("wrk: %v: %s", err, out)
	}
	text := string(out)
	if m := regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`).FindStringSubmatch(text); m != nil {
		r.WrkRPS, _ = strconv.ParseFloat(m[1], 64)
	}
	if m := regexp.MustCompile(`99%\s+([0-9.]+)(us|ms|s)`).FindStringSubmatch(text); m != nil {
		v, _ := strconv.ParseFloat(m[1], 64)
		r.WrkP99MS = map[string]float64{"us": v / 1000, "ms": v, "s": v * 1000}[m[2]]
	}
	if m := regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`).FindStringSubmatch(text); m != nil {
		r.WrkErrors, _ = strconv.Atoi(m[1])
	}
	fmt.Printf("throughput: nginx → gateway → agent-geo: %.0f req/s, p99 %.2f ms, %d non-2xx\n", r.WrkRPS, r.WrkP99MS, r.WrkErrors)
	return nil
}

func lookTool(name string) (string, error) {
	for _, p := range []string{name, "/usr/sbin/" + name} {
		if path, err := exec.LookPath(p); err == nil {
			return path, nil
		}
	}
	return "", fmt.Errorf("%s not found", name)
}
