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
      comment:
        'Import cycles make initialisation order fragile and layers meaningless. Type-only imports count too: a type ' +
        'cycle is the same knot in the picture, only erased at run time.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'pki-does-no-io',
      severity: 'error',
      comment:
        'src/pki is pure crypto and encoding (DESIGN.md §3): no file, network, process or clock service, and none ' +
        'of the layers that do I/O. Callers pass bytes in and get values (or TerminalErrors) out.',
      from: { path: '^src/pki/' },
      to: {
        path: [
          '^(node:)?(fs|fs/promises|net|tls|http|https|http2|dgram|dns|child_process|worker_threads|cluster)$',
          '^src/(http|store|pubsub|observability|provisioning|config|cli|sandbox|ca)/',
          '^src/(adapter|main)\\.ts$',
        ],
      },
    },
    {
      name: 'pki-knows-no-google-type',
      severity: 'error',
      comment:
        'PKI declares its own shapes (TemplateVariables); the Chrome enum mapping lives in src/chrome. Type-only ' +
        'imports are checked too (tsPreCompilationDeps).',
      from: { path: '^src/pki/' },
      to: { path: ['^src/chrome/', '^src/ca/google-', 'node_modules/(@google-cloud|google-auth-library|google-gax)/'] },
    },
    {
      name: 'backends-do-not-import-chrome',
      severity: 'error',
      comment: 'A CA backend sees an IssueRequest, never the Chrome process it came from (DESIGN.md §4).',
      from: { path: '^src/ca/' },
      to: { path: '^src/chrome/' },
    },
    {
      name: 'backends-do-not-call-the-workflow',
      severity: 'error',
      comment: 'The workflow calls the CAs through the contract; a CA never reaches back into src/provisioning.',
      from: { path: '^src/ca/' },
      to: { path: '^src/provisioning/' },
    },
    {
      name: 'production-does-not-import-the-sandbox',
      severity: 'error',
      comment:
        'The simulated tenant is for the demo and the tests. Only the demo command (loaded lazily) may start it, so ' +
        '`run` never carries a fake Chrome API.',
      from: { path: '^src/', pathNot: ['^src/sandbox/', '^src/cli/demo\\.ts$'] },
      to: { path: '^src/sandbox/' },
    },
    {
      name: 'workflow-has-no-vendor-code',
      severity: 'error',
      comment: 'src/provisioning talks to CAs through the CertificateAuthority contract only (DESIGN.md §4).',
      from: { path: '^src/provisioning/' },
      to: { path: '^src/ca/[^/]+/' },
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
