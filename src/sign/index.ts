/**
 * sign/: detached file signatures with any key handle, streamed (flat memory for any file
 * size); the raw signatures are what `openssl dgst -verify` checks.
 */
export { AlgorithmError, FILE_ALGORITHMS, type FileAlgorithm } from "./algorithms.ts";
export { type SignFileRequest, signFile } from "./sign_file.ts";
export { type VerifyFileRequest, verifyFile } from "./verify_file.ts";
