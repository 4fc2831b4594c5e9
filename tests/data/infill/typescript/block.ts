import { EventEmitter } from "events";

interface Job {
  id: number;
  run(): Promise<void>;
}

export class Queue extends EventEmitter {
  private jobs: Job[] = [];

  push(job: Job): void {
    this.jobs.push(job);
  }

  async drain(): Promise<number> {
    <CURSOR>
  }
}
