import { readFileSync } from "node:fs";
import { createSecureContext } from "node:tls";
import type { ClientTls } from "../client/service-client.js";
import { ConfigError } from "../config.js";

/** The cluster TLS flags: files of PEM material, "" for none. */
export interface ClusterTlsFiles {
  readonly clusterCa: string;
  readonly clusterCert: string;
  readonly clusterKey: string;
}

/**
 * Reads the PEM material a manager presents to its https:// nodes, and a joining node to its
 * manager (`--cluster-ca`, `--cluster-cert`, `--cluster-key`), or undefined when none is set
 * (the system's CAs, no client certificate). A file that cannot be read, or material that is
 * not PEM or a key that does not match its certificate, fails the start with the flag named.
 */
export function readClusterTls(files: ClusterTlsFiles): ClientTls | undefined {
  if (files.clusterCa === "" && files.clusterCert === "") return undefined;
  const read = (file: string, flag: string): Buffer => {
    try {
      return readFileSync(file);
    } catch (error) {
      throw new ConfigError(`${flag} ${file}: ${(error as NodeJS.ErrnoException).code ?? "cannot be read"}`, { cause: error });
    }
  };
  const tls = {
    ...(files.clusterCa === "" ? {} : { ca: read(files.clusterCa, "--cluster-ca") }),
    ...(files.clusterCert === "" ? {} : { cert: read(files.clusterCert, "--cluster-cert"), key: read(files.clusterKey, "--cluster-key") }),
  };
  try {
    createSecureContext(tls);
  } catch (error) {
    throw new ConfigError(`--cluster-ca/--cluster-cert/--cluster-key: ${(error as Error).message}`, { cause: error });
  }
  return tls;
}
