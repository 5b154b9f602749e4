"""A Kubernetes pod, rehearsed with runc: the pod spec the operator builds (`kamera-operator
render`) translated into one OCI runtime bundle per container, unpacked with umoci from the
images `make images` wrote.

What is kept from the pod spec: command/args (Kubernetes semantics over the image's entrypoint
and cmd), env (over the image's), runAsUser/runAsGroup/fsGroup, readOnlyRootFilesystem,
capabilities (drop ALL), allowPrivilegeEscalation (no_new_privs), workingDir, and every
volumeMount (emptyDir and the recordings claim as host directories shared by the containers,
group-owned by fsGroup as the kubelet makes them). The containers share one network namespace
made for the pod, as a pod's containers do; the test reaches it with `ip netns exec`, as
`kubectl port-forward` reaches a pod. Not rehearsed: the seccomp profile (RuntimeDefault is the
container runtime's own), resource limits, probes (the test polls the probe's path itself)."""

import json
import os
import pathlib
import platform
import shutil
import subprocess
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
IMAGES = ROOT / "build" / "images"
# The one-arch archives scripts/test.d/60-images.sh builds for the tests.
ARCHIVES = IMAGES / "test"
ARCH = {"x86_64": "amd64", "aarch64": "arm64"}[platform.machine()]


def run(*cmd, **kw):
    return subprocess.run([str(c) for c in cmd], check=True, capture_output=True, text=True, **kw)


def archive_of(image: str) -> pathlib.Path:
    """The OCI archive `make images` wrote for an image reference (by repository name)."""
    name = image.rsplit("/", 1)[-1].split(":", 1)[0]
    path = ARCHIVES / f"{name}.oci.tar"
    assert path.exists(), f"{path} is missing: run scripts/test.d/60-images.sh (make test does)"
    return path


def unpack(image: str, work: pathlib.Path) -> tuple[pathlib.Path, dict]:
    """Unpacks the host arch's image from its archive; returns the bundle and the image config."""
    name = image.rsplit("/", 1)[-1].split(":", 1)[0]
    layout, bundle = work / "layouts" / name, work / "bundles" / name
    if not bundle.exists():
        layout.parent.mkdir(parents=True, exist_ok=True)
        run("skopeo", "copy", "--quiet", f"oci-archive:{archive_of(image)}", f"oci:{layout}:image")
        run("umoci", "unpack", "--image", f"{layout}:image", bundle)
    return bundle, image_config(layout)


def image_config(layout: pathlib.Path) -> dict:
    index = json.loads((layout / "index.json").read_text())
    manifest = blob(layout, index["manifests"][0]["digest"])
    return blob(layout, manifest["config"]["digest"])


def blob(layout: pathlib.Path, digest: str) -> dict:
    algo, hexa = digest.split(":")
    return json.loads((layout / "blobs" / algo / hexa).read_text())


def pulled_sizes(archive: pathlib.Path, work: pathlib.Path) -> tuple[int, list[int]]:
    """What a node pulls for the host arch's image: the config's bytes and each compressed layer's."""
    layout = work / "size" / archive.name
    if not layout.exists():
        layout.parent.mkdir(parents=True, exist_ok=True)
        run("skopeo", "copy", "--quiet", f"oci-archive:{archive}", f"oci:{layout}:image")
    index = json.loads((layout / "index.json").read_text())
    manifest = blob(layout, index["manifests"][0]["digest"])
    return manifest["config"]["size"], [layer["size"] for layer in manifest["layers"]]


class Pod:
    """The containers of one pod spec, each a runc container, in a network namespace of their own."""

    def __init__(self, spec: dict, name: str, work: pathlib.Path):
        self.spec, self.name, self.work = spec, name, work
        self.netns = f"kamera-{name}-{os.getpid()}"
        self.state = work / "runc"
        self.volumes = work / "volumes"
        self.running: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, pathlib.Path] = {}

    def __enter__(self):
        run("ip", "netns", "add", self.netns)
        run("ip", "netns", "exec", self.netns, "ip", "link", "set", "lo", "up")
        security = self.spec.get("securityContext", {})
        for volume in self.spec.get("volumes", []):
            path = self.volumes / volume["name"]
            assert "emptyDir" in volume or "persistentVolumeClaim" in volume, \
                f"volume {volume['name']}: only emptyDir and claims are rehearsed"
            path.mkdir(parents=True)
            # The kubelet's emptyDir (0777) and fsGroup (group-owned, setgid) treatment.
            os.chown(path, 0, security.get("fsGroup", 0))
            os.chmod(path, 0o2777)
        return self

    def __exit__(self, *exc):
        for cid in list(self.running):
            self.stop(cid)
        subprocess.run(["ip", "netns", "delete", self.netns], capture_output=True)

    def volume(self, name: str) -> pathlib.Path:
        return self.volumes / name

    def exec(self, *cmd, **kw):
        """Runs a host command inside the pod's network namespace (like a port-forward)."""
        return subprocess.run(["ip", "netns", "exec", self.netns, *map(str, cmd)], **kw)

    def container(self, name: str) -> dict:
        return next(c for c in self.spec["containers"] if c["name"] == name)

    def bundle(self, container: dict, args: list[str] | None = None) -> pathlib.Path:
        """The runc bundle of a container: umoci's rootfs, with a config.json made from the spec."""
        bundle, image = unpack(container["image"], self.work)
        image = image.get("config", {})
        config = json.loads((bundle / "config.json").read_text())
        pod_sc = self.spec.get("securityContext", {})
        sc = container.get("securityContext", {})
        process = config["process"]

        # Kubernetes: command replaces ENTRYPOINT (and drops CMD); args replace CMD.
        command = container.get("command")
        cargs = args if args is not None else container.get("args")
        entry = command if command else image.get("Entrypoint") or []
        rest = cargs if cargs is not None else ([] if command else image.get("Cmd") or [])
        process["args"] = list(entry) + list(rest)

        uid = sc.get("runAsUser", pod_sc.get("runAsUser"))
        gid = sc.get("runAsGroup", pod_sc.get("runAsGroup"))
        assert uid is not None and gid is not None, "the pod must set its user"
        process["user"] = {"uid": uid, "gid": gid}
        if "fsGroup" in pod_sc:
            process["user"]["additionalGids"] = [pod_sc["fsGroup"]]

        env = dict(e.split("=", 1) for e in image.get("Env", []))
        env.update({e["name"]: e["value"] for e in container.get("env", [])})
        env.setdefault("HOME", home_of(bundle / "rootfs", uid))
        env["HOSTNAME"] = self.name
        process["env"] = [f"{k}={v}" for k, v in env.items()]
        process["cwd"] = container.get("workingDir") or image.get("WorkingDir") or "/"
        process["terminal"] = False

        caps = sc.get("capabilities", {})
        assert caps.get("drop") == ["ALL"] and not caps.get("add"), "containers drop every capability"
        process["capabilities"] = {k: [] for k in ("bounding", "effective", "inheritable", "permitted", "ambient")}
        process["noNewPrivileges"] = sc.get("allowPrivilegeEscalation") is False
        config["root"]["readonly"] = bool(sc.get("readOnlyRootFilesystem"))
        config["hostname"] = self.name

        config["linux"]["namespaces"] = [
            {"type": "network", "path": f"/var/run/netns/{self.netns}"}
            if ns["type"] == "network" else ns
            for ns in config["linux"]["namespaces"]
        ]
        config["linux"].pop("uidMappings", None)
        config["linux"].pop("gidMappings", None)
        for m in container.get("volumeMounts", []):
            opts = ["rbind", "rprivate", "nosuid", "nodev"] + (["ro"] if m.get("readOnly") else ["rw"])
            config["mounts"].append({
                "destination": m["mountPath"], "type": "bind",
                "source": str(self.volume(m["name"])), "options": opts,
            })
        (bundle / "config.json").write_text(json.dumps(config, indent=2))
        return bundle

    def start(self, name: str):
        """Starts a container of the pod in the background; its output goes to a log file."""
        container = self.container(name)
        bundle = self.bundle(container)
        log = self.work / f"{name}.log"
        self.logs[name] = log
        with open(log, "wb") as out:
            self.running[name] = subprocess.Popen(
                ["runc", "--root", str(self.state), "run", "--bundle", str(bundle), self.cid(name)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            )

    def run_once(self, name: str, args: list[str]) -> subprocess.CompletedProcess:
        """Runs a container of the pod to completion with other args."""
        bundle = self.bundle(self.container(name), args)
        return subprocess.run(
            ["runc", "--root", str(self.state), "run", "--bundle", str(bundle), self.cid(name) + "-once"],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120,
        )

    def stop(self, name: str):
        proc = self.running.pop(name)
        subprocess.run(["runc", "--root", str(self.state), "kill", self.cid(name), "TERM"], capture_output=True)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            subprocess.run(["runc", "--root", str(self.state), "kill", self.cid(name), "KILL"], capture_output=True)
            proc.wait(timeout=10)
        subprocess.run(["runc", "--root", str(self.state), "delete", "--force", self.cid(name)], capture_output=True)

    def pid(self, name: str) -> int | None:
        """The container's init process, once runc has it running."""
        r = subprocess.run(["runc", "--root", str(self.state), "state", self.cid(name)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            return None
        state = json.loads(r.stdout)
        return state["pid"] if state["status"] == "running" else None

    def wait_running(self, name: str) -> int:
        """Waits until the container runs; fails with its log when it exited instead."""
        pid = wait_for(f"container {name} to run", lambda: self.pid(name) or self.exited(name) is not None)
        assert self.exited(name) is None, f"container {name} exited:\n{self.log(name)}"
        return pid

    def exited(self, name: str) -> int | None:
        return self.running[name].poll()

    def log(self, name: str) -> str:
        return self.logs[name].read_text(errors="replace")

    def cid(self, name: str) -> str:
        return f"{self.name}-{name}-{os.getpid()}"


def home_of(rootfs: pathlib.Path, uid: int) -> str:
    """HOME as container runtimes set it: the user's entry in the image's /etc/passwd, else /."""
    passwd = rootfs / "etc" / "passwd"
    if passwd.exists():
        for line in passwd.read_text().splitlines():
            fields = line.split(":")
            if len(fields) > 5 and fields[2] == str(uid):
                return fields[5]
    return "/"


def wait_for(what: str, check, timeout: float = 120, interval: float = 0.3):
    """Polls `check` until it returns something truthy, failing after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - the last error is reported on timeout
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}" + (f" (last error: {last})" if last else ""))


def tools_missing() -> list[str]:
    return [t for t in ("runc", "umoci", "skopeo", "ip") if shutil.which(t) is None]
