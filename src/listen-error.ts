/** A listener of the node that could not bind its address: which flag, which address, and why. */
export class ListenError extends Error {
  override name = "ListenError";

  constructor(
    /** The flag that names the address (`--listen`, `--zmq-listen`, `--admin-zmq-listen`). */
    readonly flag: string,
    /** The address as configured, host:port. */
    readonly address: string,
    cause: unknown,
  ) {
    const code = (cause as NodeJS.ErrnoException | undefined)?.code;
    const reason = code === "EADDRINUSE" ? "the address is already in use" : code === "EADDRNOTAVAIL" ? "no interface of this host has that address" : code === "EACCES" ? "permission denied (a port below 1024 needs privileges)" : (cause as Error).message;
    super(`cannot listen on ${address} (${flag}): ${reason}`, { cause });
  }
}

/** Runs one listener's bind, naming its flag and address when it fails. */
export async function listening<T>(flag: string, address: string, bind: () => Promise<T>): Promise<T> {
  try {
    return await bind();
  } catch (error) {
    throw new ListenError(flag, address, error);
  }
}
