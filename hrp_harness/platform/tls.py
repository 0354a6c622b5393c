"""TLS material of a cluster: a local CA and a server certificate (openssl), or real ones.

Every cluster the harness initialises gets CLUSTER_BASE/tls/ with
  ca.crt, ca.key      a local certificate authority (the key stays with the harness's OS user)
  server.crt          signed by it, subjectAltName DNS:localhost and IP:127.0.0.1
  server.key          0600, owned by the server user (PostgreSQL refuses a looser key)
Real certificates replace the generated ones when HRP_TLS_CERT_FILE and HRP_TLS_KEY_FILE are set
(HRP_TLS_CA_FILE: the CA that signed them, for clients' sslrootcert and ssl_ca_file;
HRP_TLS_CRL_FILE: a revocation list). They are copied into tls/ with the ownership and mode
PostgreSQL demands, at every conf install: renew the files, run `invoke conf.install`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hrp_harness import HarnessError
from hrp_harness.platform.server_user import chown_for_server

ENV_CERT, ENV_KEY, ENV_CA, ENV_CRL = ("HRP_TLS_CERT_FILE", "HRP_TLS_KEY_FILE", "HRP_TLS_CA_FILE",
                                     "HRP_TLS_CRL_FILE")
SERVER_NAMES = ("DNS:localhost", "IP:127.0.0.1")
RSA_BITS = "2048"  # an RSA key, so the spec's ECDHE-RSA suite stays usable should TLS 1.2 ever be


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path
    ca: Path | None
    crl: Path | None

    def conf_values(self) -> dict[str, str]:
        return {"SSL_CERT_FILE": str(self.cert), "SSL_KEY_FILE": str(self.key),
                "SSL_CA_FILE": str(self.ca or ""), "SSL_CRL_FILE": str(self.crl or "")}


def openssl(*args: str, cwd: Path) -> None:
    if shutil.which("openssl") is None:
        raise HarnessError("openssl not found: install it (./hrp setup does, packages.txt)")
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise HarnessError(f"openssl {args[0]} failed in {cwd}:\n{done.stderr.strip()}")


def generate(directory: Path) -> None:
    """A fresh local CA and a server certificate signed by it, in directory."""
    subject_ca = "/CN=HRP local CA (generated, not for production)"
    openssl("req", "-x509", "-new", "-nodes", "-newkey", f"rsa:{RSA_BITS}", "-sha256",
            "-keyout", "ca.key", "-out", "ca.crt", "-days", "3650", "-subj", subject_ca,
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=directory)
    openssl("req", "-new", "-nodes", "-newkey", f"rsa:{RSA_BITS}", "-sha256",
            "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost", cwd=directory)
    with tempfile.NamedTemporaryFile("w", suffix=".ext", dir=directory) as ext:
        ext.write(f"subjectAltName = {','.join(SERVER_NAMES)}\n"
                  "basicConstraints = critical,CA:FALSE\n"
                  "keyUsage = critical,digitalSignature,keyEncipherment\n"
                  "extendedKeyUsage = serverAuth\n")
        ext.flush()
        openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-set_serial", str(int.from_bytes(os.urandom(16), "big") >> 1), "-sha256",
                "-days", "825", "-out", "server.crt", "-extfile", ext.name, cwd=directory)
    (directory / "server.csr").unlink()


def install(directory: Path) -> TlsFiles:
    """Make directory hold the server's TLS files (real ones from the environment, else generated
    once) with the modes PostgreSQL requires; return their paths."""
    directory.mkdir(mode=0o700, exist_ok=True)
    chown_for_server(directory)
    directory.chmod(0o700)
    cert, key = directory / "server.crt", directory / "server.key"
    ca, crl = directory / "ca.crt", directory / "server.crl"
    given = {name: os.environ.get(name) for name in (ENV_CERT, ENV_KEY, ENV_CA, ENV_CRL)}
    if given[ENV_CERT] or given[ENV_KEY]:
        if not (given[ENV_CERT] and given[ENV_KEY]):
            raise HarnessError(f"set both {ENV_CERT} and {ENV_KEY} (real certificates), or neither")
        for name, target in ((ENV_CERT, cert), (ENV_KEY, key), (ENV_CA, ca), (ENV_CRL, crl)):
            if given[name]:
                source = Path(given[name])
                if not source.is_file():
                    raise HarnessError(f"{name}={source}: no such file")
                shutil.copyfile(source, target)
        if not given[ENV_CA]:
            ca.unlink(missing_ok=True)
        if not given[ENV_CRL]:
            crl.unlink(missing_ok=True)
    elif not (cert.exists() and key.exists() and ca.exists()):
        generate(directory)
    for path in (cert, ca, crl):
        if path.exists():
            path.chmod(0o644)
            chown_for_server(path)
    key.chmod(0o600)
    chown_for_server(key)
    if (directory / "ca.key").exists():
        (directory / "ca.key").chmod(0o600)  # stays with the harness's user: the server never signs
    return TlsFiles(cert, key, ca if ca.exists() else None, crl if crl.exists() else None)
