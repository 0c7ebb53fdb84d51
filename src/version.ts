/**
 * The server's version, from package.json: what GetServerInfo and the `sessiond-version` header say.
 */
import pkg from "../package.json" with { type: "json" };

export const VERSION: string = pkg.version;
