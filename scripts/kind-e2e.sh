#!/usr/bin/env bash
# End-to-end run on a kind cluster, for people who have Docker and kind (it cannot run on
# the project's CI machines, which have neither: it is kept correct by reading, not by CI).
#
# What it does, mirroring the Go driver's tests/e2e.bats smoke test:
#   1. builds the image (Dockerfile) and creates a kind cluster (1 control plane, 1 worker)
#      with DRA (resource.k8s.io/v1, Kubernetes >= 1.34) and containerd 2.x (NRI on);
#   2. loads the image, applies deploy/ (RBAC, DeviceClass, DaemonSet) with --filter= so
#      every device is published, and waits for the driver to be ready (/healthz);
#   3. adds dummy0 on the worker, applies deploy/claims/resourceclaim.yaml and checks that
#      the pod sees eth99 with 169.254.169.13/24 and MTU 1400, and that the claim's
#      status.devices[].networkData lists the address;
#   4. checks /metrics on the worker (process_start_time_seconds, dranet_driver_*);
#   5. deletes the pod and checks dummy0 is back on the worker under its own name;
#   6. deletes the cluster (KEEP_CLUSTER=1 keeps it).
#
# Usage: scripts/kind-e2e.sh         (env: KIND_NODE_IMAGE, CLUSTER_NAME, KEEP_CLUSTER)
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER_NAME=${CLUSTER_NAME:-dranet-e2e}
KIND_NODE_IMAGE=${KIND_NODE_IMAGE:-kindest/node:v1.34.0}
IMAGE=dranet:dev
WORKER="${CLUSTER_NAME}-worker"

for tool in docker kind kubectl; do
  command -v "$tool" >/dev/null || { echo "kind-e2e: $tool is required" >&2; exit 1; }
done

cleanup() {
  local rc=$?
  if [ "$rc" -ne 0 ]; then
    echo "--- failure: state for debugging" >&2
    kubectl get resourceslices -o yaml >&2 || true
    kubectl get resourceclaims -A -o yaml >&2 || true
    kubectl -n kube-system logs -l app=dranet --tail=200 >&2 || true
  fi
  if [ "${KEEP_CLUSTER:-0}" != 1 ]; then
    kind delete cluster --name "$CLUSTER_NAME" >/dev/null 2>&1 || true
  fi
  exit "$rc"
}
trap cleanup EXIT

step() { printf '\n=== %s\n' "$*"; }

step "build $IMAGE"
docker build -t "$IMAGE" .

step "create kind cluster $CLUSTER_NAME ($KIND_NODE_IMAGE)"
kind create cluster --name "$CLUSTER_NAME" --image "$KIND_NODE_IMAGE" --wait 120s --config - <<'KIND'
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
featureGates:
  DynamicResourceAllocation: true
runtimeConfig:
  "resource.k8s.io/v1": "true"
nodes:
  - role: control-plane
  - role: worker
containerdConfigPatches:
  # NRI is on by default in containerd 2.x; say so explicitly for older node images.
  - |-
    [plugins."io.containerd.nri.v1.nri"]
      disable = false
KIND
kind load docker-image "$IMAGE" --name "$CLUSTER_NAME"

step "deploy the driver (every device published: --filter=)"
kubectl apply -f deploy/rbac.yaml -f deploy/deviceclass.yaml
sed -e 's|            - --hostname-override=$(NODE_NAME)|            - --hostname-override=$(NODE_NAME)\n            - --filter=|' \
  deploy/daemonset.yaml | kubectl apply -f -
kubectl -n kube-system rollout status ds/dranet --timeout=120s

step "add dummy0 on $WORKER and wait for it in the ResourceSlice"
docker exec "$WORKER" ip link add dummy0 type dummy
docker exec "$WORKER" ip link set up dev dummy0
# (attribute names contain "/", which kubectl's jsonpath cannot address: grep the JSON)
published() { kubectl get resourceslices -o json | grep -q '"string": "dummy0"'; }
for _ in $(seq 30); do
  published && break
  sleep 2
done
published

step "claim dummy0 for a pod (renamed eth99, 169.254.169.13/24, mtu 1400)"
kubectl apply -f deploy/claims/resourceclaim.yaml
kubectl wait --for=condition=Ready pod/pod-with-dummy --timeout=120s
kubectl exec pod-with-dummy -- ip addr show eth99 | tee /dev/stderr | grep -q 'inet 169.254.169.13/24'
kubectl exec pod-with-dummy -- ip link show eth99 | grep -q 'mtu 1400'
kubectl get resourceclaim dummy-interface-static-ip \
  -o jsonpath='{.status.devices[0].networkData.ips}' | grep -q '169.254.169.13/24'

step "metrics on the node"
docker exec "$WORKER" curl -fsS http://localhost:9177/metrics | grep -q '^process_start_time_seconds'
docker exec "$WORKER" curl -fsS http://localhost:9177/metrics | grep -q '^dranet_driver_nri_plugin_requests_total'
docker exec "$WORKER" curl -fsS http://localhost:9177/healthz | grep -q '"status": "ok"'

step "delete the pod: dummy0 comes home"
kubectl delete -f deploy/claims/resourceclaim.yaml --wait=true --timeout=120s
for _ in $(seq 30); do
  docker exec "$WORKER" ip link show dummy0 >/dev/null 2>&1 && break
  sleep 1
done
docker exec "$WORKER" ip link show dummy0

step "PASS"
