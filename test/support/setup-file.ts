// Runs in every test worker before its test files: the one-time imports our crypto stack needs.
import 'reflect-metadata';
import { tmpdir } from 'node:os';
import path from 'node:path';

// Node processes the tests start (`certprov run` replicas, CLI commands) reuse V8's compiled code of src/ and
// node_modules from earlier starts (Node's module compile cache, keyed by file content): a replica restarted twenty
// times by the crash test compiles the Google client libraries once, not twenty times. Inherited through the
// environment; a value already set is kept, NODE_DISABLE_COMPILE_CACHE=1 turns it off.
process.env.NODE_COMPILE_CACHE ??= path.join(tmpdir(), 'certprov-test-node-compile-cache');
