/**
 * @peculiar/x509 for the fake CertCentral, ready to use: the Reflect polyfill it needs is loaded first and the
 * platform's WebCrypto is its provider. The fake runs outside vitest too (the benchmark), where no setup file did
 * this.
 */
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export { x509 };
