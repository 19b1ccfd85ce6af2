/**
 * TLS-ALPN-01 (RFC 8737) answered on the controller's own HTTPS listener: while a challenge for a
 * name is pending, a client that offers `acme-tls/1` for that name (the validating CA) gets the
 * challenge certificate and nothing else; every other client gets the served certificate as
 * before, so nobody but the CA ever sees the challenge one.
 *
 * Node's ALPNCallback runs before its SNICallback (OpenSSL picks the protocol, then asks for the
 * certificate), both with the TLS socket as `this`: the first marks the socket, the second picks
 * the context for a marked one.
 */
import tls, { type SecureContext, type TLSSocket } from "node:tls";
import { type AnswerChallenge, alpnChallengePair } from "@nbfleet/acme";

export const ACME_TLS_PROTOCOL = "acme-tls/1";

export class AlpnChallengeListener {
  private readonly pending = new Map<string, SecureContext>();
  private readonly askedForChallenge = new WeakSet<TLSSocket>();

  /** For `issueCertificate({challenge: "tls-alpn-01", answer})`. */
  readonly answer: AnswerChallenge = async (challenge) => {
    const name = challenge.hostname.toLowerCase();
    const { certPem, keyPem } = await alpnChallengePair(challenge.authz, challenge.keyAuthorization);
    const context = tls.createSecureContext({ cert: certPem, key: keyPem });
    this.pending.set(name, context);
    return {
      close: async () => {
        if (this.pending.get(name) === context) this.pending.delete(name);
      },
    };
  };

  /** The https server options that route `acme-tls/1` clients to a pending challenge. */
  serverOptions(): Pick<tls.TlsOptions, "ALPNCallback" | "SNICallback"> {
    const { pending, askedForChallenge } = this;
    function selectProtocol(
      this: TLSSocket,
      { servername, protocols }: { servername: string; protocols: string[] },
    ): string | undefined {
      if (protocols.includes(ACME_TLS_PROTOCOL) && servername && pending.has(servername.toLowerCase())) {
        askedForChallenge.add(this);
        return ACME_TLS_PROTOCOL;
      }
      // The API speaks HTTP/1.1 only; a client offering nothing it speaks is refused.
      return protocols.includes("http/1.1") ? "http/1.1" : undefined;
    }
    function selectContext(
      this: TLSSocket,
      servername: string,
      done: (error: Error | null, context?: SecureContext) => void,
    ): void {
      done(null, askedForChallenge.has(this) ? pending.get(servername.toLowerCase()) : undefined);
    }
    return {
      ALPNCallback: selectProtocol as unknown as tls.TlsOptions["ALPNCallback"],
      SNICallback: selectContext as unknown as tls.TlsOptions["SNICallback"],
    };
  }

  /** The validation is the handshake: a challenge connection is closed once it is made. */
  attach(server: tls.Server): void {
    server.on("secureConnection", (socket: TLSSocket) => {
      if (socket.alpnProtocol === ACME_TLS_PROTOCOL) socket.destroy();
    });
  }
}
