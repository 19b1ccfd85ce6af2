/**
 * The one place that loads @peculiar/x509: it needs reflect-metadata evaluated first and a
 * WebCrypto provider, and both must happen exactly once before any certificate is built.
 */
import "reflect-metadata";

import { webcrypto } from "node:crypto";
import * as x509 from "@peculiar/x509";

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export { x509 };
