#!/bin/sh
# nbfleet guest bootstrap for Linux, rendered by @nbfleet/scripts (renderLinuxBootstrap); do not edit.
# Makes sure Node.js >= 20 is there, fetches the agent artifact from the controller, refuses it
# unless its SHA-256 matches, unpacks it and starts the agent with its one-time bootstrap token:
# detached in "sandbox" mode (the local provider), as a systemd service in "systemd" mode (cloud
# VMs, with the public port redirected to the notebook's private port). Safe to run again.
set -eu
umask 022

# nbfleet:settings

NBF_CHANGED=0
NBF_WORK=''
NBF_NODE_PATH=''
NBF_NODE_FOUND=''

say() { printf 'nbfleet-bootstrap: %s\n' "$*"; }
fail() {
  printf 'nbfleet-bootstrap: error: %s\n' "$*" >&2
  exit 1
}
cleanup() { if [ -n "$NBF_WORK" ]; then rm -rf "$NBF_WORK"; fi; }
trap cleanup EXIT
trap 'exit 130' INT HUP TERM

# ---- Node.js ---------------------------------------------------------------------------------

# Sets NBF_NODE_PATH when NBF_NODE is a Node.js >= 20; NBF_NODE_FOUND says what was found.
find_node() {
  NBF_NODE_PATH=''
  NBF_NODE_FOUND='none'
  candidate=$(command -v "$NBF_NODE" 2>/dev/null) || return 1
  NBF_NODE_FOUND=$("$candidate" --version 2>/dev/null) || NBF_NODE_FOUND='unknown'
  major=$("$candidate" -e 'process.stdout.write(process.versions.node.split(".")[0])' 2>/dev/null) || return 1
  [ "$major" -ge 20 ] 2>/dev/null || return 1
  NBF_NODE_PATH=$candidate
}

install_node_from_distro() {
  if command -v apt-get >/dev/null 2>&1; then
    say "installing Node.js from the distribution: apt-get install -y nodejs"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=300 update -q || say "apt-get update failed; trying the install anyway"
    apt-get -o DPkg::Lock::Timeout=300 install -y -q nodejs || say "apt-get install nodejs failed"
  elif command -v dnf >/dev/null 2>&1; then
    say "installing Node.js from the distribution: dnf install -y nodejs"
    dnf install -y nodejs || say "dnf install nodejs failed"
  elif command -v zypper >/dev/null 2>&1; then
    say "installing Node.js from the distribution: zypper install nodejs20"
    zypper --non-interactive install nodejs20 || say "zypper install nodejs20 failed"
  else
    say "no known package manager (apt-get, dnf, zypper) to install Node.js with"
  fi
}

# The official build from NBF_NODE_DIST_URL, checked against that directory's SHASUMS256.txt.
install_node_from_dist() {
  case $(uname -m) in
    x86_64 | amd64) arch=x64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) fail "no official Node.js build for machine type $(uname -m); install Node.js >= 20 and run this again" ;;
  esac
  say "downloading the official Node.js build for linux-$arch from $NBF_NODE_DIST_URL"
  download "$NBF_NODE_DIST_URL/SHASUMS256.txt" "$NBF_WORK/SHASUMS256.txt" public
  line=$(grep -E "  node-v[0-9]+\.[0-9]+\.[0-9]+-linux-$arch\.tar\.gz\$" "$NBF_WORK/SHASUMS256.txt" | head -n 1) ||
    fail "$NBF_NODE_DIST_URL/SHASUMS256.txt lists no node-v*-linux-$arch.tar.gz"
  sum=${line%% *}
  name=${line##* }
  download "$NBF_NODE_DIST_URL/$name" "$NBF_WORK/$name" public
  verify_sha256 "$NBF_WORK/$name" "$sum" "$NBF_NODE_DIST_URL/$name"
  rm -rf "$NBF_INSTALL_DIR/node.partial"
  mkdir -p "$NBF_INSTALL_DIR/node.partial"
  tar -xzf "$NBF_WORK/$name" -C "$NBF_INSTALL_DIR/node.partial" --strip-components=1
  rm -rf "$NBF_INSTALL_DIR/node"
  mv "$NBF_INSTALL_DIR/node.partial" "$NBF_INSTALL_DIR/node"
  NBF_NODE="$NBF_INSTALL_DIR/node/bin/node"
}

ensure_node() {
  if find_node; then
    say "using Node.js $NBF_NODE_FOUND ($NBF_NODE_PATH)"
    return 0
  fi
  if [ "$NBF_INSTALL_NODE" != 1 ]; then
    fail "Node.js >= 20 is required to run the agent; found $NBF_NODE_FOUND for '$NBF_NODE'. Install Node.js 20 or newer and run this again."
  fi
  say "Node.js >= 20 is required; found $NBF_NODE_FOUND"
  install_node_from_distro
  if find_node; then
    say "using Node.js $NBF_NODE_FOUND ($NBF_NODE_PATH)"
    return 0
  fi
  if [ -z "$NBF_NODE_DIST_URL" ]; then
    fail "the distribution's Node.js is $NBF_NODE_FOUND but the agent needs Node.js >= 20; install Node.js 20 or newer (for example from nodejs.org) and run this again"
  fi
  say "the distribution's Node.js is $NBF_NODE_FOUND (the agent needs >= 20)"
  install_node_from_dist
  find_node || fail "the Node.js installed from $NBF_NODE_DIST_URL does not run ($NBF_NODE_FOUND)"
  say "using Node.js $NBF_NODE_FOUND ($NBF_NODE_PATH)"
}

# ---- download and checksum -------------------------------------------------------------------

# download URL FILE [public]: a download from the controller trusts only its CA when one is
# given, or only the controller's own certificate, carried with its pinned SHA-256 fingerprint
# (Node.js takes that certificate as the one trust anchor and checks the fingerprint before the
# request is sent: curl and wget cannot pin a fingerprint); anything else trusts the system
# store. TLS is never switched off; the SHA-256 check of what arrived follows.
download() {
  url=$1
  out=$2
  cacert=''
  pin=''
  if [ "${3:-}" != public ]; then
    if [ -n "$NBF_CONTROLLER_CA_PEM" ]; then
      cacert="$NBF_INSTALL_DIR/controller-ca.pem"
    elif [ -n "$NBF_CONTROLLER_FINGERPRINT" ]; then
      pin=$NBF_CONTROLLER_FINGERPRINT
      [ -n "$NBF_CONTROLLER_CERT_PEM" ] || fail "the pinned fingerprint came without the controller's certificate (NBF_CONTROLLER_CERT_PEM)"
      pinned_cert="$NBF_WORK/controller-cert.pem"
      write_file "$pinned_cert" "$NBF_CONTROLLER_CERT_PEM" 644
    fi
  fi
  if [ -n "$pin" ]; then
    [ -n "$NBF_NODE_PATH" ] || fail "Node.js is needed to download $url with the controller's pinned certificate"
    node_get "$url" "$out" --pin "$pin" "$pinned_cert"
  elif command -v curl >/dev/null 2>&1; then
    set -- -fsSL --retry 5 --retry-delay 2 --connect-timeout 20 -o "$out"
    if [ -n "$cacert" ]; then set -- "$@" --cacert "$cacert"; fi
    curl "$@" "$url" || fail "could not download $url (curl)"
  elif command -v wget >/dev/null 2>&1; then
    set -- -q --tries=5 --timeout=20 -O "$out"
    if [ -n "$cacert" ]; then set -- "$@" "--ca-certificate=$cacert"; fi
    wget "$@" "$url" || fail "could not download $url (wget)"
  elif [ -n "$NBF_NODE_PATH" ]; then
    if [ -n "$cacert" ]; then node_get "$url" "$out" --ca "$cacert"; else node_get "$url" "$out"; fi
  else
    fail "neither curl nor wget nor Node.js is available to download $url"
  fi
}

# node_get URL FILE [--pin SHA256 CERTFILE | --ca FILE]: up to 5 attempts; a refused certificate
# (exit 3) is not retried.
node_get() {
  attempt=1
  while :; do
    status=0
    "$NBF_NODE_PATH" -e "$NBF_NODE_GET" "$@" || status=$?
    [ "$status" = 0 ] && return 0
    [ "$status" = 3 ] && fail "refused to download $1: the controller's certificate is not the trusted one"
    [ "$attempt" -ge 5 ] && fail "could not download $1 (Node.js)"
    attempt=$((attempt + 1))
    sleep 2
  done
}

NBF_NODE_GET='
const fs = require("node:fs");
const http = require("node:http");
const https = require("node:https");
const net = require("node:net");
const tls = require("node:tls");
const [first, out, mode, value, pinnedCert] = process.argv.slice(1);
const pin = mode === "--pin" ? value.replace(/:/g, "").toUpperCase() : null;
const trusted = { "--pin": pinnedCert, "--ca": value }[mode];
const ca = trusted === undefined ? undefined : fs.readFileSync(trusted);
const stop = (message, code) => {
  console.error(message);
  process.exit(code);
};
const certRefused = (error) =>
  error.code === "ERR_TLS_CERT_ALTNAME_INVALID" || /CERT|SELF_SIGNED|UNABLE_TO/.test(error.code || "");
// The pinned certificate is the only trust anchor (a leaf issued by a CA the guest does not
// know counts too: allowPartialTrustChain) and its fingerprint must be the pin instead of the
// host name matching. The socket is handed to the request only after both held: not a byte is
// sent before.
const pinned = (url) => (options, done) => {
  const host = url.hostname.replace(/^\[|\]$/g, "");
  const refuse = (why) =>
    stop(`refusing the controller at ${url.host}: ${why}, but ${value} is pinned; nothing was sent to it`, 3);
  const socket = tls.connect({
    host,
    port: Number(url.port || 443),
    servername: net.isIP(host) ? undefined : host,
    ca,
    allowPartialTrustChain: true,
    checkServerIdentity: (name, cert) =>
      cert.fingerprint256.replace(/:/g, "") === pin
        ? undefined
        : Object.assign(new Error(`its certificate has SHA-256 ${cert.fingerprint256}`), { code: "NBF_PIN_MISMATCH" }),
  });
  socket.setTimeout(20000, () => socket.destroy(new Error("no TLS handshake within 20 s")));
  const onError = (error) => {
    if (error.code === "NBF_PIN_MISMATCH") refuse(error.message);
    else if (certRefused(error)) refuse(`its certificate is not the one carried with the pin (${error.code})`);
    else done(error);
  };
  socket.once("error", onError);
  socket.once("secureConnect", () => {
    socket.setTimeout(0);
    socket.off("error", onError);
    done(null, socket);
  });
};
const get = (href, redirects) => {
  const url = new URL(href);
  const secure = url.protocol === "https:";
  if (!secure && (pin !== null || ca !== undefined)) stop(`${href}: a CA or pin is given, but this is not an https URL`, 3);
  const options = { timeout: 60000, headers: { "user-agent": "nbfleet-bootstrap" } };
  if (pin !== null) options.createConnection = pinned(url);
  else if (ca !== undefined) options.ca = ca;
  const request = (secure ? https : http).get(url, options, (response) => {
    const status = response.statusCode || 0;
    if (status >= 300 && status < 400 && response.headers.location && redirects < 5) {
      response.resume();
      get(new URL(response.headers.location, url).href, redirects + 1);
      return;
    }
    if (status !== 200) stop(`${href}: HTTP ${status} ${response.statusMessage || ""}`, 1);
    const file = fs.createWriteStream(out);
    response.on("error", (error) => stop(`${href}: ${error.message}`, 1));
    file.on("error", (error) => stop(`${out}: ${error.message}`, 1));
    file.on("finish", () => process.exit(response.complete ? 0 : 1));
    response.pipe(file);
  });
  request.on("timeout", () => request.destroy(new Error("no data for 60 s")));
  request.on("error", (error) => stop(`${href}: ${error.message}`, certRefused(error) ? 3 : 1));
};
get(first, 0);
'

sha256_of() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$1" | cut -d ' ' -f 1
  elif command -v shasum >/dev/null 2>&1; then
    shasum -a 256 "$1" | cut -d ' ' -f 1
  else
    "$NBF_NODE_PATH" -e 'const h = require("node:crypto").createHash("sha256");
      process.stdout.write(h.update(require("node:fs").readFileSync(process.argv[1])).digest("hex"));' "$1"
  fi
}

# verify_sha256 FILE EXPECTED WHAT: removes FILE and stops unless it has that SHA-256.
verify_sha256() {
  actual=$(sha256_of "$1")
  if [ "$actual" != "$2" ]; then
    rm -f "$1"
    fail "checksum mismatch for $3: expected sha256 $2, got sha256 $actual; refusing to install it"
  fi
  say "checksum ok: sha256 $actual"
}

# ---- files -----------------------------------------------------------------------------------

# write_file FILE CONTENT MODE: replaces FILE atomically when its content differs (then sets
# NBF_CHANGED=1). Written under umask 077, so a secret is never readable by others, even briefly.
write_file() {
  if [ -f "$1" ] && [ "$(cat "$1")" = "$(printf '%s\n' "$2")" ]; then
    chmod "$3" "$1"
    return 0
  fi
  (
    umask 077
    printf '%s\n' "$2" >"$1.partial"
  )
  chmod "$3" "$1.partial"
  mv -f "$1.partial" "$1"
  NBF_CHANGED=1
}

# The artifact goes to versions/<version> (versions/<sha256> when no version is given), beside
# whatever runs now. `current` points at it and `previous` at the one it replaces; older ones are
# dropped. Running the same bootstrap again keeps the version an upgrade installed since
# (bootstrap-artifact records what this bootstrap last installed): a machine's restart must not
# take its agent back to the version it was created with.
install_artifact() {
  name=${NBF_ARTIFACT_VERSION:-$NBF_ARTIFACT_SHA256}
  version_dir="$NBF_INSTALL_DIR/versions/$name"
  marker="$NBF_INSTALL_DIR/bootstrap-artifact"
  current=$(readlink "$NBF_INSTALL_DIR/current" 2>/dev/null) || current=''
  if [ "$(cat "$marker" 2>/dev/null || true)" = "$NBF_ARTIFACT_SHA256" ] && [ -n "$current" ] &&
    [ -f "$NBF_INSTALL_DIR/$current/nbfleet-agent.mjs" ]; then
    say "agent artifact sha256 $NBF_ARTIFACT_SHA256 was installed before; keeping $current"
    return 0
  fi
  if [ -f "$version_dir/nbfleet-agent.mjs" ] &&
    [ "$(cat "$version_dir/.nbfleet-sha256" 2>/dev/null || echo "$NBF_ARTIFACT_SHA256")" = "$NBF_ARTIFACT_SHA256" ]; then
    say "agent artifact $name (sha256 $NBF_ARTIFACT_SHA256) is already installed"
  else
    say "downloading the agent artifact from $NBF_ARTIFACT_URL"
    download "$NBF_ARTIFACT_URL" "$NBF_WORK/nbfleet-agent.tar.gz"
    verify_sha256 "$NBF_WORK/nbfleet-agent.tar.gz" "$NBF_ARTIFACT_SHA256" "$NBF_ARTIFACT_URL"
    rm -rf "$version_dir.partial"
    mkdir -p "$version_dir.partial"
    tar -xzf "$NBF_WORK/nbfleet-agent.tar.gz" -C "$version_dir.partial"
    [ -f "$version_dir.partial/nbfleet-agent.mjs" ] || fail "the artifact from $NBF_ARTIFACT_URL has no nbfleet-agent.mjs"
    printf '%s\n' "$NBF_ARTIFACT_SHA256" >"$version_dir.partial/.nbfleet-sha256"
    rm -rf "$version_dir"
    mv "$version_dir.partial" "$version_dir"
    NBF_CHANGED=1
    say "agent unpacked into $version_dir"
  fi
  if [ "$current" != "versions/$name" ]; then
    if [ -n "$current" ] && [ -d "$NBF_INSTALL_DIR/$current" ]; then
      ln -sfn "$current" "$NBF_INSTALL_DIR/previous"
    else
      rm -f "$NBF_INSTALL_DIR/previous"
    fi
    ln -sfn "versions/$name" "$NBF_INSTALL_DIR/current"
    NBF_CHANGED=1
    for dir in "$NBF_INSTALL_DIR"/versions/*; do
      [ -d "$dir" ] || continue
      case "$dir" in
        "$NBF_INSTALL_DIR/versions/$name" | "$NBF_INSTALL_DIR/$current") ;;
        *) rm -rf "$dir" ;;
      esac
    done
  fi
  # An upgrade pending from before no longer applies to the version installed here.
  rm -f "$NBF_INSTALL_DIR/upgrade.json"
  printf '%s\n' "$NBF_ARTIFACT_SHA256" >"$marker"
}

install_files() {
  mkdir -p "$NBF_INSTALL_DIR/bin"
  if [ "$(readlink "$NBF_INSTALL_DIR/bin/node" 2>/dev/null || true)" != "$NBF_NODE_PATH" ]; then
    ln -sfn "$NBF_NODE_PATH" "$NBF_INSTALL_DIR/bin/node"
    NBF_CHANGED=1
  fi
  write_file "$NBF_INSTALL_DIR/bootstrap-token" "$NBF_BOOTSTRAP_TOKEN" 600
  # Public: the agent checks upgrade artifacts' signatures with it.
  if [ -n "$NBF_RELEASE_KEY_PEM" ]; then write_file "$NBF_INSTALL_DIR/release-key.pub" "$NBF_RELEASE_KEY_PEM" 644; fi
  # The agent applies it only at its first start; later changes come from commands.
  if [ -n "$NBF_PASSWORD_HASH" ]; then write_file "$NBF_INSTALL_DIR/password-hash" "$NBF_PASSWORD_HASH" 600; fi
  write_file "$NBF_INSTALL_DIR/run-agent.sh" "$NBF_LAUNCHER" 755
}

# ---- sandbox: a detached agent ---------------------------------------------------------------

agent_alive() {
  [ -n "$1" ] && kill -0 "$1" 2>/dev/null || return 1
  if [ -r "/proc/$1/cmdline" ]; then
    tr '\000' ' ' <"/proc/$1/cmdline" | grep -qE 'nbfleet-agent\.mjs|run-agent\.sh'
  else
    ps -o args= -p "$1" 2>/dev/null | grep -qE 'nbfleet-agent\.mjs|run-agent\.sh'
  fi
}

start_sandbox_agent() {
  pidfile="$NBF_INSTALL_DIR/agent.pid"
  pid=$(cut -d' ' -f1 "$pidfile" 2>/dev/null) || pid=''
  if agent_alive "$pid"; then
    if [ "$NBF_CHANGED" = 0 ]; then
      say "the agent is already running (pid $pid); nothing changed"
      return 0
    fi
    # SIGTERM ends the agent but leaves the notebook server running for the next agent to adopt.
    say "stopping the running agent (pid $pid) to start the new one"
    kill -TERM "$pid" 2>/dev/null || true
    waited=0
    while agent_alive "$pid" && [ "$waited" -lt 15 ]; do
      sleep 1
      waited=$((waited + 1))
    done
    if agent_alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  if [ -f "$NBF_CONSOLE_LOG" ]; then mv -f "$NBF_CONSOLE_LOG" "$NBF_CONSOLE_LOG.1"; fi
  say "starting the agent detached; its console output goes to $NBF_CONSOLE_LOG"
  rm -f "$pidfile"
  # `setsid -f` rather than `&`: a shell started as an asynchronous list ignores SIGINT for good,
  # and the launcher must be able to pass SIGINT (stop the notebook too) on to the agent.
  # The launcher writes its own pid.
  # `env -i`: the agent and its notebook inherit only the variables in NBF_AGENT_ENV_NAMES,
  # never whatever else the caller had exported (an admin token, say).
  set --
  for name in $NBF_AGENT_ENV_NAMES; do
    eval "isset=\${$name+x} value=\${$name-}"
    if [ -n "$isset" ]; then set -- "$@" "$name=$value"; fi
  done
  if command -v setsid >/dev/null 2>&1 && setsid --help 2>&1 | grep -q -- '--fork'; then
    setsid -f env -i "$@" sh "$NBF_INSTALL_DIR/run-agent.sh" >"$NBF_CONSOLE_LOG" 2>&1 </dev/null
  else
    nohup env -i "$@" sh "$NBF_INSTALL_DIR/run-agent.sh" >"$NBF_CONSOLE_LOG" 2>&1 </dev/null &
  fi
  waited=0
  while [ ! -s "$pidfile" ] && [ "$waited" -lt 50 ]; do
    sleep 0.1
    waited=$((waited + 1))
  done
  pid=$(cut -d' ' -f1 "$pidfile" 2>/dev/null) || pid=''
  [ -n "$pid" ] || fail "the agent launcher did not start; see $NBF_CONSOLE_LOG"
  sleep 1
  if ! kill -0 "$pid" 2>/dev/null; then
    tail -n 20 "$NBF_CONSOLE_LOG" >&2 || true
    fail "the agent (pid $pid) exited at once; see $NBF_CONSOLE_LOG"
  fi
  say "agent started (pid $pid, pidfile $pidfile)"
}

# ---- systemd: a service, and the public port -------------------------------------------------

setup_port_redirect() {
  if [ -z "$NBF_PUBLIC_PORT" ]; then return 0; fi
  if ! command -v nft >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    say "installing nftables: apt-get install -y nftables"
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q nftables ||
      say "apt-get install nftables failed"
  fi
  command -v nft >/dev/null 2>&1 || fail "nft (nftables) is needed to redirect port $NBF_PUBLIC_PORT to $NBF_NOTEBOOK_PORT"
  say "redirecting public port $NBF_PUBLIC_PORT to the notebook port $NBF_NOTEBOOK_PORT (nftables)"
  write_file "$NBF_INSTALL_DIR/port-redirect.nft" "$NBF_NFT_RULES" 644
  write_file "$NBF_SYSTEMD_UNIT_DIR/nbfleet-port-redirect.service" "$NBF_REDIRECT_UNIT" 644
  systemctl daemon-reload
  systemctl enable nbfleet-port-redirect.service
  systemctl restart nbfleet-port-redirect.service
}

install_service() {
  write_file "$NBF_SYSTEMD_UNIT_DIR/nbfleet-agent.service" "$NBF_AGENT_UNIT" 644
  systemctl daemon-reload
  systemctl enable nbfleet-agent.service
  if [ "$NBF_CHANGED" = 1 ]; then
    say "restarting nbfleet-agent.service (the notebook server keeps running: KillMode=process)"
    systemctl restart nbfleet-agent.service
  else
    systemctl start nbfleet-agent.service
  fi
  say "nbfleet-agent.service is enabled and started"
}

main() {
  say "bootstrap in $NBF_MODE mode for controller $NBF_CONTROLLER_URLS"
  mkdir -p "$NBF_INSTALL_DIR"
  NBF_WORK=$(mktemp -d "${TMPDIR:-/tmp}/nbfleet-bootstrap.XXXXXX")
  ensure_node
  if [ -n "$NBF_CONTROLLER_CA_PEM" ]; then
    write_file "$NBF_INSTALL_DIR/controller-ca.pem" "$NBF_CONTROLLER_CA_PEM" 644
  fi
  # Public: the agent trusts the ACME server's own TLS by it (a private CA; pebble in tests).
  if [ -n "$NBF_ACME_CA_PEM" ]; then
    write_file "$NBF_INSTALL_DIR/acme-ca.pem" "$NBF_ACME_CA_PEM" 644
  fi
  install_artifact
  install_files
  if [ "$NBF_MODE" = sandbox ]; then
    start_sandbox_agent
  else
    setup_port_redirect
    install_service
  fi
  say "done"
}

main "$@"
