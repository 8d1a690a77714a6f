import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Paths of a test PKI made with the openssl CLI: two CAs, a server and two clients. */
export interface TestPki {
  readonly dir: string;
  /** CA that signed the server certificate and the good client certificate. */
  readonly ca: string;
  /** Server certificate (SANs 127.0.0.1, ::1 and localhost) and key. */
  readonly serverCert: string;
  readonly serverKey: string;
  /** Client certificate signed by `ca`, and its key. */
  readonly clientCert: string;
  readonly clientKey: string;
  /** Client certificate signed by another CA, and its key. */
  readonly strangerCert: string;
  readonly strangerKey: string;
  /** Reads one of the files. */
  read(path: string): Buffer;
}

function openssl(dir: string, args: string[]): void {
  execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
}

function makeCa(dir: string, name: string): void {
  openssl(dir, ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj", `/CN=${name}`, "-keyout", `${name}.key`, "-out", `${name}.pem`]);
}

function makeLeaf(dir: string, name: string, ca: string, extensions: string): void {
  openssl(dir, ["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", `/CN=${name}`, "-keyout", `${name}.key`, "-out", `${name}.csr`]);
  writeFileSync(join(dir, `${name}.ext`), extensions);
  openssl(dir, ["x509", "-req", "-in", `${name}.csr`, "-CA", `${ca}.pem`, "-CAkey", `${ca}.key`, "-CAcreateserial", "-days", "2", "-extfile", `${name}.ext`, "-out", `${name}.pem`]);
}

/** Generates the PKI into a fresh temporary directory. */
export function makeTestPki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), "drce-pki-"));
  makeCa(dir, "test-ca");
  makeCa(dir, "other-ca");
  makeLeaf(dir, "server", "test-ca", "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\nextendedKeyUsage=serverAuth\n");
  makeLeaf(dir, "client", "test-ca", "extendedKeyUsage=clientAuth\n");
  makeLeaf(dir, "stranger", "other-ca", "extendedKeyUsage=clientAuth\n");
  const at = (file: string): string => join(dir, file);
  return {
    dir,
    ca: at("test-ca.pem"),
    serverCert: at("server.pem"),
    serverKey: at("server.key"),
    clientCert: at("client.pem"),
    clientKey: at("client.key"),
    strangerCert: at("stranger.pem"),
    strangerKey: at("stranger.key"),
    read: (path) => readFileSync(path),
  };
}
