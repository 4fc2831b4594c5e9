const el = <div className={styles.<CURSOR>}>hello</div>;
