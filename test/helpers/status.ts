import { taskStatus, type TaskStatus } from "../../src/domain/task.js";

/** A status with every field at its default but those given (id "1" unless given). */
export function testStatus(fields: Partial<TaskStatus>): TaskStatus {
  return taskStatus({ id: "1", ...fields });
}
