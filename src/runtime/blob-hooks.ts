import type { PGlite } from '@electric-sql/pglite';
import { EngineInternalsChangedError } from '../errors.js';

/** The engine's blob hooks behind `COPY ... FROM '/dev/blob'` (declared, not documented). */
interface BlobHooks {
  _handleBlob(blob?: Blob): Promise<void>;
  _cleanupBlob(): Promise<void>;
  _getWrittenBlob(): Promise<Blob | undefined>;
}

export function blobHooks(engine: PGlite): BlobHooks {
  const candidate = engine as unknown as Partial<BlobHooks>;
  if (
    typeof candidate._handleBlob !== 'function' ||
    typeof candidate._cleanupBlob !== 'function' ||
    typeof candidate._getWrittenBlob !== 'function'
  ) {
    throw new EngineInternalsChangedError('the /dev/blob hooks (_handleBlob, _cleanupBlob, _getWrittenBlob)');
  }
  return candidate as BlobHooks;
}
