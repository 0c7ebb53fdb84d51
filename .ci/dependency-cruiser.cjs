/**
 * The layering of sessiond, checked by `npm run lint` (dependency-cruiser):
 *
 *   handlers -> domain <- db        (src/app.ts is the one place that knows both sides)
 *
 * The domain owns its types and the storage contracts it needs; db/ implements them and alone knows
 * TypeORM, pg and SQLSTATEs; handlers/ alone knows protobuf (gen/) and Connect. telemetry/ (sessiond's
 * own traces: OpenTelemetry SDK, exporter, database spans) is used by handlers/ and app.ts and uses
 * none of the layers. No import cycles.
 */
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: "no-circular",
      severity: "error",
      comment: "An import cycle ties two modules into one; break it by moving the shared part.",
      from: { path: "^src/" },
      to: { circular: true },
    },
    {
      name: "domain-not-to-db",
      severity: "error",
      comment: "The domain declares the storage contracts it needs; db/ implements them (handlers -> domain <- db).",
      from: { path: "^src/domain/" },
      to: { path: "^src/db/" },
    },
    {
      name: "domain-not-to-outer-layers",
      severity: "error",
      comment: "The domain knows no transport and no wiring: not handlers/, server, routes, app, net, cli, console or telemetry.",
      from: { path: "^src/domain/" },
      to: { path: "^src/(handlers|net|cli|console|telemetry)/|^src/(app|server|routes|main|config|logger)\\.ts$" },
    },
    {
      name: "telemetry-is-a-leaf",
      severity: "error",
      comment: "Tracing observes the layers from outside (app.ts wires it in): telemetry/ imports none of them, nor protobuf, Connect, TypeORM or pg.",
      from: { path: "^src/telemetry/" },
      to: { path: "^src/(handlers|db|domain|net|cli|console)/|^src/(app|server|routes|main|config)\\.ts$|^gen/|node_modules/(@connectrpc|@bufbuild|typeorm|pg|pg-[a-z-]+)/" },
    },
    {
      name: "domain-not-to-protocol-or-driver",
      severity: "error",
      comment: "No protobuf, Connect, TypeORM or pg in the domain.",
      from: { path: "^src/domain/" },
      to: { path: "^gen/|node_modules/(@connectrpc|@bufbuild|typeorm|pg|pg-[a-z-]+)/" },
    },
    {
      name: "db-not-to-handlers",
      severity: "error",
      comment: "Storage knows tables, not the API: no handlers/, gen/ or Connect in db/.",
      from: { path: "^src/db/" },
      to: { path: "^src/(handlers|console)/|^src/net/one-port\\.ts$|^src/(server|routes)\\.ts$|^gen/|node_modules/@connectrpc/" },
    },
    {
      name: "handlers-not-to-db",
      severity: "error",
      comment: "Handlers call the domain; only app.ts wires db/ in.",
      from: { path: "^src/handlers/" },
      to: { path: "^src/db/" },
    },
    {
      name: "driver-only-in-db",
      severity: "error",
      comment: "Only db/ imports TypeORM and pg (app.ts and the CLI reach them through db/).",
      from: { path: "^src/", pathNot: "^src/db/" },
      to: { path: "node_modules/(typeorm|pg|pg-[a-z-]+)/" },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    exclude: { path: "^src/console/" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: { exportsFields: ["exports"], conditionNames: ["import", "require", "node", "default"], extensions: [".ts", ".js", ".mjs"] },
  },
};
