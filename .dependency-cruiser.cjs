/**
 * Import rules checked by `npm run lint` (dependency-cruiser): no cycles, and the layering of DESIGN.md §3 —
 * the workflow holds no vendor code, backends do not know each other, and shipped code never imports tests.
 */
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'Import cycles make initialisation order fragile and layers meaningless (type-only imports are erased).',
      from: {},
      to: { circular: true, viaOnly: { dependencyTypesNot: ['type-only'] } },
    },
    {
      name: 'workflow-has-no-vendor-code',
      severity: 'error',
      comment: 'src/provisioning talks to CAs through the CertificateAuthority contract only (DESIGN.md §4).',
      from: { path: '^src/provisioning/' },
      to: { path: '^src/ca/(local|digicert|azure-key-vault)/' },
    },
    {
      name: 'backends-are-independent',
      severity: 'error',
      comment: 'A CA backend may use the shared layers, never another backend.',
      from: { path: '^src/ca/([^/]+)/' },
      to: { path: '^src/ca/([^/]+)/', pathNot: '^src/ca/$1/' },
    },
    {
      name: 'only-chrome-talks-to-google-chrome-api',
      severity: 'error',
      comment: 'Nothing but src/chrome (and the sandbox that imitates it) builds Chrome Management API requests.',
      from: { path: '^src/', pathNot: '^src/(chrome|sandbox|cli)/|^src/adapter\\.ts$' },
      to: { path: '^src/chrome/client\\.ts$' },
    },
    {
      name: 'shipped-code-does-not-import-tests',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^(test|bench)/' },
    },
    {
      name: 'not-to-dev-dependency',
      severity: 'error',
      comment: 'The image installs production dependencies only.',
      from: { path: '^src/' },
      to: { dependencyTypes: ['npm-dev'], dependencyTypesNot: ['type-only'] },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js'] },
  },
};
