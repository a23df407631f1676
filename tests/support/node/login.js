// Log in to fe with node's mysql2 and run statements; print one JSON line: {"rows": [...]} or {"error": [...]}.
// Input: one JSON object on argv[2]: {host, port, user, password, tls, statements}.
"use strict";
const mysql = require("mysql2/promise");

async function main() {
  const request = JSON.parse(process.argv[2]);
  const options = {
    host: request.host,
    port: request.port,
    user: request.user,
    password: request.password,
    connectTimeout: 10000,
  };
  if (request.tls) {
    options.ssl = { rejectUnauthorized: false };
  }
  const result = { rows: [], error: null };
  let connection;
  try {
    connection = await mysql.createConnection(options);
    for (const statement of request.statements) {
      const [rows] = await connection.query({ sql: statement, rowsAsArray: true });
      result.rows.push(Array.isArray(rows) ? rows : []);
    }
  } catch (error) {
    result.error = [error.errno ?? -1, error.sqlState ?? "", String(error.sqlMessage ?? error.message)];
  } finally {
    if (connection) {
      await connection.end().catch(() => {});
    }
  }
  process.stdout.write(JSON.stringify(result) + "\n");
}

main();
