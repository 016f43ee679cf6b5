import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.InterruptedIOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Objects;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.stream.Collectors;

import jdk.jshell.DeclarationSnippet;
import jdk.jshell.Diag;
import jdk.jshell.EvalException;
import jdk.jshell.ExpressionSnippet;
import jdk.jshell.JShell;
import jdk.jshell.JShellException;
import jdk.jshell.MethodSnippet;
import jdk.jshell.Snippet;
import jdk.jshell.SnippetEvent;
import jdk.jshell.SourceCodeAnalysis;
import jdk.jshell.UnresolvedReferenceException;
import jdk.jshell.VarSnippet;

/**
 * Runs Java code for the Java kernel ({@code kernel.py} beside this file): JShell with local execution, so
 * snippets run in this JVM.
 *
 * <p>Two pipes, named by the file descriptors in {@code args}: requests in, replies out. A frame is a type
 * byte, a 4-byte big-endian length and that many bytes. Requests: {@code c} code to run; {@code s} stop
 * the running code; {@code v} set environment variables (name, value, name, value... separated by NUL;
 * see {@code Environment}); {@code u} unset them (names separated by NUL). Replies: {@code o} and
 * {@code e} bytes written to System.out and System.err (UTF-8, batched); {@code r} the last expression's
 * type and display text; {@code x} an error's name, value and traceback; {@code d} the request is done.
 * Fields of {@code r} and {@code x} are each a 4-byte length and UTF-8 bytes. The end of the requests ends
 * the JVM.
 */
public final class Driver {
    /** The imports the {@code jshell} tool starts with. */
    private static final List<String> IMPORTS = List.of(
            "java.io.*", "java.math.*", "java.net.*", "java.nio.file.*", "java.util.*",
            "java.util.concurrent.*", "java.util.function.*", "java.util.prefs.*", "java.util.regex.*",
            "java.util.stream.*");
    /** Subkinds of a snippet whose value is shown, as the {@code jshell} tool shows an expression's. */
    private static final List<Snippet.SubKind> SHOWN = List.of(
            Snippet.SubKind.VAR_VALUE_SUBKIND, Snippet.SubKind.OTHER_EXPRESSION_SUBKIND,
            Snippet.SubKind.TEMP_VAR_EXPRESSION_SUBKIND);

    private final Channel channel;
    private final Outbox outbox;
    private final JShell shell;
    private final BlockingQueue<Request> work = new LinkedBlockingQueue<>();
    /** Snippets compiled while no request waits, so that the JIT has compiled javac's own code before the
     * user's cells need it: the first fifty cells took twice as long without. */
    private static final int WARM_UP_SNIPPETS = 300;
    private int warmedUp;
    private final Object stopLock = new Object();
    /** Requests by number: the last one read, the last one over, the one running, the one to stop. */
    private long submitted;
    private long finished;
    private long running;
    private long stopping;
    private Environment environment;

    private Driver(Channel channel) {
        this.channel = channel;
        this.outbox = new Outbox(channel);
        PrintStream out = new PrintStream(new Capture(outbox, (byte) 'o'), true, StandardCharsets.UTF_8);
        PrintStream err = new PrintStream(new Capture(outbox, (byte) 'e'), true, StandardCharsets.UTF_8);
        System.setOut(out);
        System.setErr(err);
        System.setIn(InputStream.nullInputStream());
        shell = JShell.builder().executionEngine("local").out(out).err(err).in(System.in).build();
        for (String name : IMPORTS) {
            shell.eval("import " + name + ";");
        }
    }

    public static void main(String[] args) throws Exception {
        DataInputStream requests = new DataInputStream(
                new BufferedInputStream(new FileInputStream("/proc/self/fd/" + args[0])));
        Channel channel = new Channel(new DataOutputStream(
                new BufferedOutputStream(new FileOutputStream("/proc/self/fd/" + args[1]), 1 << 16)));
        Driver driver = new Driver(channel);
        Thread flusher = new Thread(driver.outbox::run, "output");
        flusher.setDaemon(true);
        flusher.start();
        Thread evaluator = new Thread(driver::serve, "evaluator");
        evaluator.setDaemon(true);
        evaluator.start();
        Runtime.getRuntime().addShutdownHook(new Thread(driver.outbox::flush));
        driver.read(requests);
    }

    /** Reads requests until their pipe ends, then ends the JVM. */
    private void read(DataInputStream requests) {
        try {
            while (true) {
                byte type = requests.readByte();
                byte[] payload = new byte[requests.readInt()];
                requests.readFully(payload);
                String text = new String(payload, StandardCharsets.UTF_8);
                switch (type) {
                    case 'c' -> submit(() -> execute(text));
                    case 'v' -> submit(() -> setEnvironment(text, true));
                    case 'u' -> submit(() -> setEnvironment(text, false));
                    case 's' -> stop();
                    default -> { }
                }
            }
        } catch (EOFException ended) {
            Runtime.getRuntime().halt(0);
        } catch (IOException failed) {
            Runtime.getRuntime().halt(1);
        }
    }

    private void submit(Runnable run) {
        synchronized (stopLock) {
            work.add(new Request(++submitted, run));
        }
    }

    private record Request(long number, Runnable run) { }

    /** Runs requests one at a time, each ending with a {@code d} reply. */
    private void serve() {
        while (true) {
            Request request;
            try {
                request = warmedUp < WARM_UP_SNIPPETS ? work.poll() : work.take();
            } catch (InterruptedException e) {
                continue;
            }
            if (request == null) {
                warmUp();
                continue;
            }
            synchronized (stopLock) {
                running = request.number();
            }
            try {
                request.run().run();
            } catch (RuntimeException | Error e) {
                // JShell's own failure: the request is over all the same
                error(e.getClass().getName(), Objects.toString(e.getMessage(), ""), "");
            } finally {
                synchronized (stopLock) {
                    running = 0;
                    finished = request.number();
                }
                outbox.flush();
                channel.send('d', new byte[0]);
            }
        }
    }

    /** Compiles and runs one snippet of nothing but arithmetic and drops it: the user sees nothing of it. */
    private void warmUp() {
        for (SnippetEvent event : shell.eval("Integer.toString(" + warmedUp + " * 2).length()")) {
            if (shell.status(event.snippet()).isActive()) {
                shell.drop(event.snippet());
            }
        }
        warmedUp++;
    }

    /**
     * Stops the last request read: its current snippet and any after it. A stop can arrive before the
     * request starts, or while a snippet is compiled, when JShell has nothing to stop yet; so it is
     * repeated until the request is over.
     */
    private void stop() {
        long target;
        synchronized (stopLock) {
            target = submitted;
            if (finished == target || stopping == target) {
                return;
            }
            stopping = target;
        }
        Thread stopper = new Thread(() -> {
            while (true) {
                synchronized (stopLock) {
                    if (finished >= target) {
                        return;
                    }
                    if (running == target) {
                        shell.stop();
                    }
                }
                try {
                    Thread.sleep(20);
                } catch (InterruptedException e) {
                    return;
                }
            }
        }, "stopper");
        stopper.setDaemon(true);
        stopper.start();
    }

    private boolean stopped() {
        synchronized (stopLock) {
            return stopping == running;
        }
    }

    /** Evaluates {@code code} snippet by snippet, up to the first that fails. */
    private void execute(String code) {
        SourceCodeAnalysis analysis = shell.sourceCodeAnalysis();
        String remaining = code;
        byte[] result = null;
        while (true) {
            SourceCodeAnalysis.CompletionInfo info = analysis.analyzeCompletion(remaining);
            if (info.completeness() == SourceCodeAnalysis.Completeness.EMPTY) {
                break;
            }
            boolean complete = info.completeness().isComplete();
            // an incomplete snippet is evaluated anyway, for the compiler's message about it
            List<SnippetEvent> events = shell.eval(complete ? info.source() : remaining);
            outbox.flush();
            if (stopped()) {
                error("InterruptedException", "The execution was interrupted", "");
                return;
            }
            result = null;
            for (SnippetEvent event : events) {
                if (event.causeSnippet() != null) {
                    continue;
                }
                boolean failed = failed(event);
                Snippet snippet = event.snippet();
                String value = event.value();
                if (!failed && SHOWN.contains(snippet.subKind()) && value != null && !"null".equals(value)) {
                    result = fields(typeName(snippet), value);
                }
                // The variable ($1, $2...) that holds an expression's value is never named to the user; each
                // one kept would slow every later snippet's compilation.
                if (snippet.subKind() == Snippet.SubKind.TEMP_VAR_EXPRESSION_SUBKIND
                        && shell.status(snippet).isActive()) {
                    shell.drop(snippet);
                }
                if (failed) {
                    return;
                }
            }
            if (!complete) {
                break;
            }
            remaining = info.remaining();
        }
        if (result != null) {
            channel.send('r', result);
        }
    }

    /** Reports the failure of a snippet just evaluated, if it failed. */
    private boolean failed(SnippetEvent event) {
        JShellException exception = event.exception();
        if (exception instanceof EvalException thrown) {
            String message = Objects.toString(thrown.getMessage(), "");
            error(thrown.getExceptionClassName(), message, traceback(thrown));
            return true;
        }
        if (exception instanceof UnresolvedReferenceException unresolved) {
            DeclarationSnippet snippet = unresolved.getSnippet();
            String missing = shell.unresolvedDependencies(snippet).collect(Collectors.joining(", "));
            error("UnresolvedReferenceException",
                    describe(snippet) + " cannot be used until " + missing + " is declared", "");
            return true;
        }
        if (exception != null) {
            error(exception.getClass().getName(), Objects.toString(exception.getMessage(), ""), "");
            return true;
        }
        if (!event.status().isDefined()) {
            compileError(event.snippet());
            return true;
        }
        return false;
    }

    private void compileError(Snippet snippet) {
        List<String> messages = new ArrayList<>();
        StringBuilder traceback = new StringBuilder();
        String source = snippet.source();
        for (Diag diag : shell.diagnostics(snippet).filter(Diag::isError).toList()) {
            String message = diag.getMessage(Locale.ROOT).lines()
                    .filter(line -> !line.strip().equals("location: class"))
                    .collect(Collectors.joining("\n")).strip();
            messages.add(message);
            traceback.append("Error: ").append(message).append('\n');
            appendSourceLine(traceback, source, (int) diag.getStartPosition(), (int) diag.getEndPosition());
        }
        if (messages.isEmpty() && snippet instanceof DeclarationSnippet declaration) {
            String missing = shell.unresolvedDependencies(declaration).collect(Collectors.joining(", "));
            messages.add(describe(declaration) + " cannot be defined until " + missing + " is declared");
        }
        error("CompilationException", String.join("\n", messages), traceback.toString().stripTrailing());
    }

    /** The line of {@code source} holding {@code start}, and carets under {@code start..end}. */
    private static void appendSourceLine(StringBuilder out, String source, int start, int end) {
        if (start < 0 || start > source.length()) {
            return;
        }
        int lineStart = start == 0 ? 0 : source.lastIndexOf('\n', start - 1) + 1;
        int lineEnd = source.indexOf('\n', start);
        if (lineEnd < 0) {
            lineEnd = source.length();
        }
        out.append(source, lineStart, lineEnd).append('\n');
        int width = Math.max(1, Math.min(end, lineEnd) - start);
        out.append(" ".repeat(start - lineStart)).append("^".repeat(width)).append('\n');
    }

    private static String describe(Snippet snippet) {
        if (snippet instanceof MethodSnippet method) {
            return "method " + method.name() + "(" + method.parameterTypes() + ")";
        }
        if (snippet instanceof VarSnippet variable) {
            return "variable " + variable.name();
        }
        if (snippet instanceof DeclarationSnippet declaration) {
            return declaration.name();
        }
        return snippet.source();
    }

    private static String typeName(Snippet snippet) {
        if (snippet instanceof VarSnippet variable) {
            return variable.typeName();
        }
        if (snippet instanceof ExpressionSnippet expression) {
            return expression.typeName();
        }
        return "";
    }

    private static String traceback(EvalException thrown) {
        StringBuilder out = new StringBuilder();
        Throwable current = thrown;
        String prefix = "";
        while (current != null) {
            String name = current instanceof EvalException e
                    ? e.getExceptionClassName()
                    : current.getClass().getName();
            out.append(prefix).append(name);
            if (current.getMessage() != null) {
                out.append(": ").append(current.getMessage());
            }
            out.append('\n');
            for (StackTraceElement frame : current.getStackTrace()) {
                out.append("\tat ").append(frame(frame)).append('\n');
            }
            current = current.getCause();
            prefix = "Caused by: ";
        }
        return out.toString().stripTrailing();
    }

    /** A stack frame as the {@code jshell} tool writes it: a snippet's file is its id, as in {@code #3:1}. */
    private static String frame(StackTraceElement frame) {
        String where;
        if (frame.isNativeMethod()) {
            where = "Native Method";
        } else if (frame.getFileName() == null) {
            where = "Unknown Source";
        } else {
            where = frame.getLineNumber() >= 0
                    ? frame.getFileName() + ":" + frame.getLineNumber()
                    : frame.getFileName();
        }
        String name = frame.getClassName().isEmpty()
                ? frame.getMethodName()
                : frame.getClassName() + "." + frame.getMethodName();
        return name + "(" + where + ")";
    }

    private void error(String name, String value, String traceback) {
        outbox.flush();
        channel.send('x', fields(name, value, traceback));
    }

    /** Sets (name, value, name, value...) or unsets (names) environment variables. */
    private void setEnvironment(String text, boolean set) {
        if (environment == null) {
            try {
                environment = Environment.open();
            } catch (ReflectiveOperationException | RuntimeException e) {
                error(e.getClass().getName(), Objects.toString(e.getMessage(), ""), "");
                return;
            }
        }
        String[] parts = text.split("\0", -1);
        int step = set ? 2 : 1;
        for (int i = 0; i + step <= parts.length; i += step) {
            environment.put(parts[i], set ? parts[i + 1] : null);
        }
    }

    private static byte[] fields(String... values) {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        for (String value : values) {
            byte[] encoded = value.getBytes(StandardCharsets.UTF_8);
            bytes.writeBytes(new byte[] {
                (byte) (encoded.length >>> 24), (byte) (encoded.length >>> 16),
                (byte) (encoded.length >>> 8), (byte) encoded.length});
            bytes.writeBytes(encoded);
        }
        return bytes.toByteArray();
    }

    /** The reply pipe; a frame at a time. A pipe that fails means the kernel is gone: so is the JVM. */
    private static final class Channel {
        private final DataOutputStream out;

        Channel(DataOutputStream out) {
            this.out = out;
        }

        synchronized void send(char type, byte[] payload) {
            try {
                out.writeByte(type);
                out.writeInt(payload.length);
                out.write(payload);
                out.flush();
            } catch (IOException e) {
                Runtime.getRuntime().halt(1);
            }
        }
    }

    /**
     * What System.out and System.err were given and not yet sent, in the order written, sent by the
     * {@code output} thread within {@code BATCH_MS} of the first byte (at once when {@code LIMIT} bytes
     * wait), and by {@code flush}. User threads only add to it: a thread stopped mid-write cannot leave a
     * frame half-written. Writers wait while {@code LIMIT} bytes are unsent.
     */
    private static final class Outbox {
        private static final long BATCH_MS = 20;
        private static final int LIMIT = 1 << 16;

        private final Channel channel;
        private final List<byte[]> segments = new ArrayList<>();
        private final List<Character> types = new ArrayList<>();
        private final ByteArrayOutputStream open = new ByteArrayOutputStream();
        private char openType;
        private int held;

        Outbox(Channel channel) {
            this.channel = channel;
        }

        synchronized void write(char type, byte[] bytes, int offset, int length)
                throws InterruptedIOException {
            try {
                while (held >= LIMIT) {
                    wait();
                }
            } catch (InterruptedException e) {
                throw new InterruptedIOException();
            }
            if (type != openType && open.size() > 0) {
                close();
            }
            openType = type;
            open.write(bytes, offset, length);
            boolean first = held == 0;
            held += length;
            if (first || held >= LIMIT) {
                notifyAll();
            }
        }

        private void close() {
            segments.add(open.toByteArray());
            types.add(openType);
            open.reset();
        }

        /** Sends everything written so far. */
        void flush() {
            synchronized (channel) {
                List<byte[]> sending;
                List<Character> sendingTypes;
                synchronized (this) {
                    if (held == 0) {
                        return;
                    }
                    if (open.size() > 0) {
                        close();
                    }
                    sending = new ArrayList<>(segments);
                    sendingTypes = new ArrayList<>(types);
                    segments.clear();
                    types.clear();
                    held = 0;
                    notifyAll();
                }
                for (int i = 0; i < sending.size(); i++) {
                    channel.send(sendingTypes.get(i), sending.get(i));
                }
            }
        }

        void run() {
            while (true) {
                try {
                    synchronized (this) {
                        while (held == 0) {
                            wait();
                        }
                        long deadline = System.currentTimeMillis() + BATCH_MS;
                        long left = BATCH_MS;
                        while (held > 0 && held < LIMIT && left > 0) {
                            wait(left);
                            left = deadline - System.currentTimeMillis();
                        }
                    }
                } catch (InterruptedException e) {
                    continue;
                }
                flush();
            }
        }
    }

    /** System.out or System.err: bytes go to the outbox. */
    private static final class Capture extends OutputStream {
        private final Outbox outbox;
        private final char type;

        Capture(Outbox outbox, byte type) {
            this.outbox = outbox;
            this.type = (char) type;
        }

        @Override
        public void write(int b) throws IOException {
            outbox.write(type, new byte[] {(byte) b}, 0, 1);
        }

        @Override
        public void write(byte[] bytes, int offset, int length) throws IOException {
            outbox.write(type, bytes, offset, length);
        }
    }
}
