export { loadOrCreateAccountKey } from "./account-key.js";
export {
  type ChallengeResponder,
  type ChallengeType,
  alpnChallengePair,
  startChallengeResponder,
} from "./challenge-responder.js";
export { type CheckedChain, checkIssuedChain } from "./check-chain.js";
export { AcmeError, type AcmeErrorCode } from "./error.js";
export {
  type AnswerChallenge,
  type ChallengeToAnswer,
  type IssueOptions,
  type IssuedChain,
  issueCertificate,
} from "./issue.js";
export {
  type AcmeProblem,
  BAD_NONCE,
  PROBLEM_PREFIX,
  RATE_LIMITED,
  isProblem,
  problemError,
  retryAfterSeconds,
  stepError,
} from "./problem.js";
export { httpsAgentFor, registerAcmeServer } from "./transport.js";
export {
  type CurrentCertificate,
  type FailureInput,
  RENEW_BEFORE_MS,
  renewalDueAt,
  retryAt,
} from "./renewal-schedule.js";
export { type CertificatePair, type SelfSignedRequest, selfSignedPair } from "./self-signed.js";
export { TEMPORARY_ORGANIZATION, temporaryCertificate } from "./temporary-certificate.js";
