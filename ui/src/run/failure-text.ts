import { ConnectError } from "@connectrpc/connect";
import { errorText } from "../api.js";

/**
 * The sentence for a refused run: the Connect code and message, and the legacy error number
 * the node sent with it (`drce-error-code`), as in "InvalidArgument: ... (error 102)", so
 * an operator can look the refusal up in the protocol's table.
 */
export function failureText(error: unknown): string {
  const legacy = ConnectError.from(error).metadata.get("drce-error-code");
  return legacy === null || legacy === "" ? errorText(error) : `${errorText(error)} (error ${legacy})`;
}
