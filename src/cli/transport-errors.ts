import { Code, ConnectError } from "@connectrpc/connect";

export { NoAnswerError } from "../client/no-answer-error.js";

/** What the CLI knows about the call that failed, to say what went wrong in words. */
export interface CallContext {
  /** The node's URL as the user gave it. */
  readonly server: string;
  /** Whether a token was sent (from --token, --token-file or DRCE_TOKEN). */
  readonly hasToken: boolean;
  /** What the connection saw: a TLS alert may reach the CLI only as a session error. */
  readonly transport?: { readonly answered: boolean; readonly sessionError: Error | undefined };
}

/**
 * The error a call ended with, its message rewritten in words for the transport failures a
 * user meets (nothing listening, no answer, a server that is not drce, TLS mismatches, a
 * missing token) instead of OpenSSL or HTTP/2 codes. The Connect code stays (and so the exit
 * code); an error the node itself answered with passes unchanged.
 */
export function explainFailure(error: unknown, context: CallContext): unknown {
  if (!(error instanceof ConnectError)) return error;
  const sentence = explanation(error, context);
  if (sentence === undefined) return error;
  const code = error.code === Code.Unauthenticated ? Code.Unauthenticated : Code.Unavailable;
  return new ConnectError(sentence, code, error.metadata, undefined, error);
}

function explanation(error: ConnectError, { server, hasToken, transport }: CallContext): string | undefined {
  const raw = [...rawChain(error), ...rawChain(transport?.sessionError)];
  // By name: ConnectError's instanceof accepts any ConnectError, and the transport wraps ours.
  const noAnswer = raw.find((e) => e.name === "NoAnswerError");
  if (noAnswer !== undefined) return (noAnswer as ConnectError).rawMessage;
  const chain = raw.map((e) => {
    const code = (e as NodeJS.ErrnoException).code;
    return { code: typeof code === "string" ? code : undefined, message: e.message };
  });
  const codes = new Set(chain.map((e) => e.code).filter((c): c is string => c !== undefined));
  const text = chain.map((e) => e.message).join(" | ");
  const url = new URL(server);
  const plain = `http://${url.host}`;
  const secure = `https://${url.host}`;
  if (error.code === Code.Unauthenticated) {
    return hasToken
      ? `the node at ${server} refused the token given (--token, --token-file or DRCE_TOKEN): it is not the node's token`
      : `the node at ${server} requires a token: pass --token T or --token-file FILE (or set DRCE_TOKEN)`;
  }
  if (codes.has("ECONNREFUSED")) return `nothing listens at ${server} (connection refused): is a node running there? (drce serve starts one)`;
  if (codes.has("ENOTFOUND") || codes.has("EAI_AGAIN")) return `cannot resolve the host name ${JSON.stringify(url.hostname)} of ${server}`;
  if (codes.has("EHOSTUNREACH") || codes.has("ENETUNREACH")) return `no route to the host of ${server}`;
  if (codes.has("ERR_SSL_WRONG_VERSION_NUMBER") || /wrong version number|packet length too long/i.test(text)) {
    return `${server} answered in cleartext, not TLS: it serves http:// (use ${plain})`;
  }
  if (codes.has("ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED") || /certificate required/i.test(text)) {
    return `the node at ${server} requires a client certificate: pass --cert FILE --cert-key FILE (or DRCE_CERT, DRCE_CERT_KEY)`;
  }
  if (codes.has("ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE") || /alert handshake failure/i.test(text)) {
    return `the node at ${server} refused the TLS handshake; it may require a client certificate (--cert FILE --cert-key FILE)`;
  }
  if (/alert (unknown ca|bad certificate|certificate unknown|decrypt error)/i.test(text) || codes.has("ERR_SSL_TLSV1_ALERT_UNKNOWN_CA")) {
    return `the node at ${server} refused the client certificate: it is not signed by the CA the node trusts`;
  }
  if (codes.has("CERT_HAS_EXPIRED")) return `the certificate of the node at ${server} has expired`;
  if (codes.has("ERR_TLS_CERT_ALTNAME_INVALID")) return `the certificate of the node at ${server} is not made out to ${JSON.stringify(url.hostname)}`;
  if (["UNABLE_TO_VERIFY_LEAF_SIGNATURE", "SELF_SIGNED_CERT_IN_CHAIN", "DEPTH_ZERO_SELF_SIGNED_CERT", "UNABLE_TO_GET_ISSUER_CERT_LOCALLY", "UNABLE_TO_GET_ISSUER_CERT"].some((c) => codes.has(c))) {
    return `the certificate of the node at ${server} is not signed by a CA this client trusts: pass --cacert FILE (or DRCE_CACERT)`;
  }
  if (codes.has("ERR_HTTP2_ERROR") || codes.has("ERR_HTTP2_SESSION_ERROR") || codes.has("ECONNRESET") || /Protocol error|NGHTTP2_PROTOCOL_ERROR|socket hang up/i.test(text)) {
    return url.protocol === "http:"
      ? `${server} answered, but not as a drce node: it does not speak HTTP/2 (a plain HTTP/1 web server?), or it serves TLS (then use ${secure})`
      : `${server} closed the TLS connection before answering: it may refuse the client certificate given (--cert, signed by a CA it does not trust), or not be a drce node`;
  }
  // The connection closed before the server answered as HTTP/2 would: its streams only say CANCEL.
  if (transport !== undefined && !transport.answered && (error.code === Code.Canceled || error.code === Code.Aborted || error.code === Code.Internal)) {
    return url.protocol === "http:"
      ? `${server} closed the connection without answering as a drce node: it does not speak HTTP/2, or it serves TLS (then use ${secure})`
      : `${server} closed the TLS connection before answering: it may refuse the client certificate given (--cert, signed by a CA it does not trust), or not be a drce node`;
  }
  if (error.code === Code.Unimplemented || /HTTP (404|405)/.test(error.rawMessage)) {
    return `${server} answered, but it is not a drce node (or not one that knows this call): it does not serve the drce API (${error.rawMessage})`;
  }
  if (/unexpected response content type|unsupported content type|invalid content-type|HTTP \d{3}/i.test(error.rawMessage)) {
    return `${server} answered, but not as a drce node (${error.rawMessage})`;
  }
  return undefined;
}


function rawChain(error: unknown): Error[] {
  const chain: Error[] = [];
  let current: unknown = error;
  for (let depth = 0; depth < 8 && current instanceof Error; depth++) {
    chain.push(current);
    current = (current as { cause?: unknown }).cause;
  }
  return chain;
}
