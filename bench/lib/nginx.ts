/**
 * The peer we compare with: nginx as the distribution docs recommend it
 * (https://distribution.github.io/distribution/recipes/nginx/, without the auth
 * parts, since the benchmark measures proxying), plus the streaming settings a
 * careful operator adds, and the same TLS settings as the proxy.
 */

export interface NginxConfig {
  /** Directory for the pid file, logs and temp paths. */
  dir: string;
  /** worker_processes: as many as the proxy has serving processes, or nginx's `auto` (one per core). */
  workers: number | 'auto';
  listen: string;
  upstream: string;
  /** Leaf then CA, as the proxy serves it. */
  certificateChain: string;
  key: string;
  /** From the proxy's own secure context (src/tls/context.ts), so both offer the same. */
  tls12Ciphers: readonly string[];
  tls13Ciphersuites: readonly string[];
  curves: string;
}

export function renderNginxConfig(c: NginxConfig): string {
  return `# Written by bench/lib/nginx.ts for one benchmark run.
# As many workers as the proxy has serving processes (1: one core each; auto: one per core).
worker_processes ${c.workers};
pid ${c.dir}/nginx.pid;
error_log ${c.dir}/error.log warn;
events { worker_connections 4096; }

http {
  # A request log line per request, as the proxy logs at its default level (info).
  access_log ${c.dir}/access.log;
  client_body_temp_path ${c.dir}/client_body;
  proxy_temp_path ${c.dir}/proxy_temp;
  fastcgi_temp_path ${c.dir}/fastcgi_temp;
  uwsgi_temp_path ${c.dir}/uwsgi_temp;
  scgi_temp_path ${c.dir}/scgi_temp;

  upstream docker-registry {
    server ${c.upstream};
    # Keep-alive to the registry (needs HTTP/1.1 and an empty Connection header below).
    keepalive 64;
    keepalive_requests 1000000;
  }

  ## From the recipe: add the API version header when the registry did not.
  map $upstream_http_docker_distribution_api_version $docker_distribution_api_version {
    '' 'registry/2.0';
  }

  server {
    listen ${c.listen} ssl;

    ssl_certificate ${c.certificateChain};
    ssl_certificate_key ${c.key};
    # The proxy's settings (Mozilla intermediate): TLS 1.2 and 1.3, ECDHE + AEAD only.
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ciphers ${c.tls12Ciphers.join(':')};
    ssl_conf_command Ciphersuites ${c.tls13Ciphersuites.join(':')};
    ssl_ecdh_curve ${c.curves};
    ssl_prefer_server_ciphers off;
    ssl_session_cache shared:SSL:10m;
    ssl_session_tickets on;

    # The proxy keeps a client connection for any number of requests; so does nginx here
    # (its default, 1000, would add a full handshake every 1000 requests).
    keepalive_requests 1000000;

    # disable any limits to avoid HTTP 413 for large image uploads
    client_max_body_size 0;
    # required to avoid HTTP 411: see Issue #1486 (https://github.com/moby/moby/issues/1486)
    chunked_transfer_encoding on;

    location /v2/ {
      # Do not allow connections from docker 1.5 and earlier
      # docker pre-1.6.0 did not properly set the user agent on ping, catch "Go *" user agents
      if ($http_user_agent ~ "^(docker\\/1\\.(3|4|5(?!\\.[0-9]-dev))|Go ).*$" ) {
        return 404;
      }

      add_header 'Docker-Distribution-Api-Version' $docker_distribution_api_version always;

      proxy_pass                          http://docker-registry;
      proxy_set_header  Host              $http_host;   # required for docker client's sake
      proxy_set_header  X-Real-IP         $remote_addr; # pass on real client's IP
      proxy_set_header  X-Forwarded-For   $proxy_add_x_forwarded_for;
      proxy_set_header  X-Forwarded-Proto $scheme;
      proxy_read_timeout                  900;

      # Streaming: HTTP/1.1 keep-alive upstream, request bodies passed on as they arrive
      # (a 1 GiB PATCH is not spooled to disk first).
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_request_buffering off;
      # Responses go through a bounded set of memory buffers and never to a temp file
      # (proxy_max_temp_file_size 0): nginx reads ahead of a slow client by at most
      # these buffers, then stops reading the registry, as the proxy's streams do.
      proxy_buffering on;
      proxy_buffer_size 16k;
      proxy_buffers 8 64k;
      proxy_busy_buffers_size 128k;
      proxy_max_temp_file_size 0;
    }
  }
}
`;
}
