import { pino, type Logger } from "pino";

export type { Logger };

/**
 * Structured JSON logs on stdout. Credentials are redacted wherever they could appear.
 */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      // `app`, not `service`: call lines carry the RPC service under `service`.
      base: { app: "sessiond" },
      redact: {
        paths: ["authorization", "*.authorization", "headers.authorization", "*.headers.authorization", "x-api-key", "*.x-api-key", "client_secret", "*.client_secret", "password", "*.password"],
        censor: "[redacted]",
      },
    },
    destination,
  );
}
