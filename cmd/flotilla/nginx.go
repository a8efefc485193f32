package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/flotilla-go/flotilla/discovery"
)

func (a *app) nginxCmd() *cobra.Command {
	var (
		out   string
		check bool
		opts  discovery.NginxOptions
	)
	c := &cobra.Command{
		Use:   "nginx",
		Short: "Write nginx's configuration for the public services of the port map",
		Long: `nginx writes the configuration of nginx's front door from the port map: an
upstream per public service (its socket or loopback port, kept alive) and a
server routing /<name>/ to each, and / to --root. The output is stable, so it
diffs well, and begins with a header naming the port map it came from.

-o writes the file atomically (a new file renamed into place), so nginx
never reads half of it. --check then runs nginx -t on it, inside a minimal
nginx.conf of its own, when nginx is installed.`,
		Example: `  flotilla nginx --root agent-gateway -o /etc/nginx/conf.d/flotilla.conf --check && nginx -s reload
  flotilla nginx --listen 8080 --server-name api.example.com | less`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			reg, err := a.portMap()
			if err != nil {
				return err
			}
			if opts.Root != "" {
				if _, err := pick(reg, []string{opts.Root}); err != nil {
					return err
				}
			}
			conf, err := discovery.NginxConfig(reg, opts)
			if err != nil {
				return err
			}
			if check {
				if err := nginxCheck(cmd.Context(), conf, a); err != nil {
					return err
				}
			}
			if out == "" {
				_, err := a.stdout.Write(conf)
				return err
			}
			return writeAtomically(out, conf)
		},
	}
	f := c.Flags()
	f.StringVarP(&out, "output", "o", "", "write the configuration to this file instead of stdout")
	f.BoolVar(&check, "check", false, "run nginx -t on the configuration first (when nginx is installed)")
	f.StringVar(&opts.Listen, "listen", "", "nginx's listen directive (default 80)")
	f.StringVar(&opts.ServerName, "server-name", "", "nginx's server_name (default _, any name)")
	f.StringVar(&opts.Root, "root", "", "the service that answers /, such as agent-gateway")
	return c
}

// writeAtomically writes data to path through a new file in its folder,
// renamed over it.
func writeAtomically(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after the rename, a no-op
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// nginxCheck runs nginx -t on conf, included in a minimal nginx.conf in a
// temporary folder, and is a finding when nginx rejects it. Without nginx it
// says so and passes.
func nginxCheck(ctx context.Context, conf []byte, a *app) error {
	bin, err := exec.LookPath("nginx")
	if err != nil {
		fmt.Fprintln(a.stderr, "nginx is not installed here: the configuration was not checked")
		return nil
	}
	dir, err := os.MkdirTemp("", "flotilla-nginx-check-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, "flotilla.conf"), conf, 0o600); err != nil {
		return err
	}
	main := fmt.Sprintf(`pid %[1]s/nginx.pid;
error_log stderr warn;
events { worker_connections 64; }
http {
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    include %[1]s/flotilla.conf;
}
`, dir)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(main), 0o600); err != nil {
		return err
	}
	out, err := exec.CommandContext(ctx, bin, "-t", "-q", "-e", "stderr", "-p", dir, "-c", filepath.Join(dir, "nginx.conf")).CombinedOutput()
	if err != nil {
		return fmt.Errorf("nginx -t rejects the configuration: %s", strings.TrimSpace(string(out)))
	}
	fmt.Fprintln(a.stderr, "nginx -t: the configuration is valid")
	return nil
}
