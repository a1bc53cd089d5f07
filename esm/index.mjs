// The package's ESM entry: the CommonJS build, re-exported, not a second copy
// of it. `import` and `require` then share one module instance, so an error
// thrown through one is `instanceof XenDomainBuildError` for the other.
// The names are listed (not `export *`, which would also export `__esModule`);
// __test__/package.test.ts checks they are exactly the CommonJS build's.
// createRequire, not `import cjs from`: a bundler would read the build's
// __esModule flag and hand the default import `exports.default`, undefined.
import { createRequire } from 'node:module'

const cjs = createRequire(import.meta.url)('../dist/index.js')

export const {
  BUNDLED_BUILDER_PATH,
  BuildHost,
  DEFAULT_ACK_TIMEOUT_MS,
  DEFAULT_SUSPENDED_TIMEOUT_MS,
  ERRNO_NAMES,
  HOST_XENGUEST_PATH,
  IMAGE_FD,
  InMemoryXenstore,
  NumaPlanner,
  RealXenstore,
  SimulatedGuest,
  SimulatedXenguest,
  SpawnedXenguest,
  XenDomainBuildError,
  buildChannel,
  buildDomain,
  buildPost,
  buildPre,
  buildTracingChannel,
  createDomain,
  defaultXenguestPath,
  destroyDomain,
  domainEntries,
  domainPath,
  dyingDomainHandle,
  guestReadOnly,
  guestReadWrite,
  isXenDomainBuildError,
  memoryModel,
  migrateDomain,
  openHypervisor,
  openXenstore,
  parseXenguestError,
  readHostTopology,
  removeVm,
  restoreDomain,
  restoreTracingChannel,
  resultCarriesFrames,
  simulateHost,
  simulatorPresets,
  suspendDomain,
  xenguestArgs,
  xenguestRestoreArgs,
  xenguestResumeArgs,
  xenguestSaveArgs,
} = cjs
