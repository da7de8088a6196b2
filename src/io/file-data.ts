// What a file holds when lorakit hands it to a writer (atomic.node.ts in Node).

/** What can be written: a string (UTF-8), bytes, or a sequence of byte chunks. */
export type FileData = string | Uint8Array | Iterable<Uint8Array> | AsyncIterable<Uint8Array>;
export type FileDataSync = string | Uint8Array | Iterable<Uint8Array>;
