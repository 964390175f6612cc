# Shared by scripts/cluster.sh and scripts/bench-cluster.sh (sourced, not run).

# Returns once something accepts connections on the loopback port (at most 10 seconds).
wait_for_port() {
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listens on port $1" >&2
  exit 1
}

# Writes DIR/nginx.conf from scripts/cluster/nginx.conf: nginx on PORT, round robin over the
# instances on the given ports; starts it in the background and waits until it listens. Its pid is in
# $nginx_pid.
start_nginx() { # dir port instance-port…
  local dir=$1 port=$2 upstreams="" p
  shift 2
  for p in "$@"; do upstreams+="    server 127.0.0.1:$p;"$'\n'; done
  mkdir -p "$dir"
  awk -v dir="$dir" -v port="$port" -v ups="$upstreams" '
    { gsub("@DIR@", dir); gsub("@PORT@", port) }
    /@UPSTREAMS@/ { printf "%s", ups; next }
    { print }' "$(dirname "${BASH_SOURCE[0]}")/nginx.conf" >"$dir/nginx.conf"
  nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" &
  nginx_pid=$!
  wait_for_port "$port"
}
