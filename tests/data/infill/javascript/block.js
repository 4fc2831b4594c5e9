import { readFileSync } from "node:fs";
import path from "node:path";

function loadJson(file) {
  return JSON.parse(readFileSync(file, "utf8"));
}

export class Config {
  constructor(root) {
    this.root = root;
    this.cache = new Map();
    this.defaults = loadJson(path.join(root, "defaults.json"));
  }

  resolve(name) {
    <CURSOR>
  }

  clear() {
    this.cache.clear();
  }
}
