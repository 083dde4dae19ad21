#!/usr/bin/env bash
# Supply chain, offline: Cargo.lock and python/Cargo.lock against the RustSec
# advisory database snapshot in ../shared/advisory-db (see its SNAPSHOT.md),
# plus licenses, sources and banned crates (deny.toml). Fails on a known vulnerability.
# Installs cargo-deny (pinned) unless that version is already installed.
set -euo pipefail
cd "$(dirname "$0")/.."
want="0.20.2"
db_src="${ADVISORY_DB:-../shared/advisory-db}"
[ -d "$db_src/crates" ] || { echo "supply chain: no advisory database at $db_src"; exit 1; }

if [ "$(cargo deny --version 2>/dev/null)" != "cargo-deny $want" ]; then
  echo "installing cargo-deny $want (cargo install --locked)"
  start=$SECONDS
  cargo install --locked --quiet cargo-deny --version "$want"
  echo "cargo-deny installed in $((SECONDS - start)) s"
fi

# cargo-deny opens its database as a git checkout named after the database
# URL under db-path: make one from the snapshot, dated as the snapshot.
root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
db="$root/advisory-db-3157b0e258782691"
cp -r "$db_src" "$db"
date="$(sed -n 's/^- upstream date: //p' "$db_src/SNAPSHOT.md")"
export GIT_AUTHOR_DATE="${date:-now}T00:00:00Z" GIT_COMMITTER_DATE="${date:-now}T00:00:00Z"
git -C "$db" init -q
git -C "$db" add -A
git -C "$db" -c user.name=ci -c user.email=ci@localhost commit -qm "RustSec snapshot ${date:-}"
export DENY_DB_ROOT="$root"

echo "-- cargo deny check (advisories as of ${date:-?}, licenses, sources, bans)"
cargo deny --offline check --hide-inclusion-graph

# The Python package (python/) is a workspace of its own with its own lock
# file: the same policy applies to it (its crates fetched first, as below).
echo "-- cargo deny check: the Python package (python/Cargo.lock)"
cargo fetch --quiet --locked --manifest-path python/Cargo.toml
cargo deny --offline --manifest-path python/Cargo.toml --config deny.toml check --hide-inclusion-graph

# The canary: a lock file holding rsa 0.9.10 must fail the same advisory
# check with RUSTSEC-2023-0071 — else the database did not load and the
# check above proved nothing. Its crates come from crates.io first (cargo
# fetch), so the scan itself runs offline like the one above.
echo "-- canary: a known vulnerability must be found"
cargo fetch --quiet --locked --manifest-path .ci/canary/Cargo.toml
set +e
out="$(cargo deny --offline --manifest-path .ci/canary/Cargo.toml --config deny.toml \
  check --hide-inclusion-graph advisories 2>&1)"
rc=$?
set -e
if [ "$rc" -eq 0 ] || ! grep -q "RUSTSEC-2023-0071" <<<"$out"; then
  echo "supply chain: the canary passed (exit $rc): the advisory scan is not working"
  echo "$out" | tail -20
  exit 1
fi
echo "canary refused as it must be (RUSTSEC-2023-0071)"
