import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodType;
import java.lang.reflect.Array;
import java.lang.reflect.Constructor;
import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.util.Map;
import java.util.Optional;

/**
 * The JVM's environment variables, changed in place for the Java kernel's driver.
 *
 * <p>Two copies are kept alike. {@code java.lang.ProcessEnvironment}'s map is what {@code System.getenv}
 * reads and what {@code ProcessBuilder.environment()} copies; it is written through its string view, by
 * reflection (needs {@code --add-opens java.base/java.lang=ALL-UNNAMED}). The C library's environment is
 * what a child process gets when its {@code ProcessBuilder}'s environment was never touched; it is written
 * with {@code setenv}/{@code unsetenv} through JDK 17's incubating foreign linker, by reflection so that
 * compiling needs no flags (needs {@code --add-modules jdk.incubator.foreign
 * --enable-native-access=ALL-UNNAMED}; without them only the first copy changes).
 */
final class Environment {
    private final Map<String, String> variables;
    private final Native libc;

    private Environment(Map<String, String> variables, Native libc) {
        this.variables = variables;
        this.libc = libc;
    }

    @SuppressWarnings("unchecked")
    static Environment open() throws ReflectiveOperationException {
        Field field = Class.forName("java.lang.ProcessEnvironment").getDeclaredField("theEnvironment");
        field.setAccessible(true);
        Constructor<?> view = Class.forName("java.lang.ProcessEnvironment$StringEnvironment")
                .getDeclaredConstructor(Map.class);
        view.setAccessible(true);
        return new Environment((Map<String, String>) view.newInstance(field.get(null)), Native.load());
    }

    /**
     * Sets {@code name} to {@code value}, or unsets it when {@code value} is null. Names and values the
     * environment cannot hold (an empty name, {@code =} in a name, NUL anywhere) are left alone.
     */
    void put(String name, String value) {
        if (name.isEmpty() || name.indexOf('=') >= 0 || name.indexOf('\0') >= 0
                || (value != null && value.indexOf('\0') >= 0)) {
            return;
        }
        if (value == null) {
            variables.remove(name);
        } else {
            variables.put(name, value);
        }
        if (libc != null) {
            libc.put(name, value);
        }
    }

    /** {@code setenv} and {@code unsetenv}, called through {@code jdk.incubator.foreign}. */
    private static final class Native {
        private final MethodHandle setenv;
        private final MethodHandle unsetenv;
        private final Method newScope;
        private final Method toCString;
        private final Method address;

        private Native(MethodHandle setenv, MethodHandle unsetenv, Method newScope, Method toCString,
                Method address) {
            this.setenv = setenv;
            this.unsetenv = unsetenv;
            this.newScope = newScope;
            this.toCString = toCString;
            this.address = address;
        }

        /** The two functions, or null where the linker is not there or not allowed. */
        static Native load() {
            try {
                String api = "jdk.incubator.foreign.";
                Class<?> linker = Class.forName(api + "CLinker");
                Class<?> lookup = Class.forName(api + "SymbolLookup");
                Class<?> addressable = Class.forName(api + "Addressable");
                Class<?> descriptor = Class.forName(api + "FunctionDescriptor");
                Class<?> layout = Class.forName(api + "MemoryLayout");
                Class<?> memoryAddress = Class.forName(api + "MemoryAddress");
                Class<?> scope = Class.forName(api + "ResourceScope");
                Object instance = linker.getMethod("getInstance").invoke(null);
                Object symbols = linker.getMethod("systemLookup").invoke(null);
                Object pointer = linker.getField("C_POINTER").get(null);
                Object integer = linker.getField("C_INT").get(null);
                Method find = lookup.getMethod("lookup", String.class);
                Method downcall = linker.getMethod(
                        "downcallHandle", addressable, MethodType.class, descriptor);
                Method signature = descriptor.getMethod("of", layout, layout.arrayType());
                Object[] setArguments = (Object[]) Array.newInstance(layout, 3);
                setArguments[0] = pointer;
                setArguments[1] = pointer;
                setArguments[2] = integer;
                Object[] unsetArguments = (Object[]) Array.newInstance(layout, 1);
                unsetArguments[0] = pointer;
                MethodHandle setenv = (MethodHandle) downcall.invoke(instance,
                        ((Optional<?>) find.invoke(symbols, "setenv")).orElseThrow(),
                        MethodType.methodType(int.class, memoryAddress, memoryAddress, int.class),
                        signature.invoke(null, integer, setArguments));
                MethodHandle unsetenv = (MethodHandle) downcall.invoke(instance,
                        ((Optional<?>) find.invoke(symbols, "unsetenv")).orElseThrow(),
                        MethodType.methodType(int.class, memoryAddress),
                        signature.invoke(null, integer, unsetArguments));
                return new Native(setenv, unsetenv, scope.getMethod("newConfinedScope"),
                        linker.getMethod("toCString", String.class, scope),
                        Class.forName(api + "MemorySegment").getMethod("address"));
            } catch (ReflectiveOperationException | RuntimeException | LinkageError missing) {
                return null;
            }
        }

        void put(String name, String value) {
            try (AutoCloseable scope = (AutoCloseable) newScope.invoke(null)) {
                Object cName = address.invoke(toCString.invoke(null, name, scope));
                if (value == null) {
                    unsetenv.invoke(cName);
                } else {
                    setenv.invoke(cName, address.invoke(toCString.invoke(null, value, scope)), 1);
                }
            } catch (Throwable failed) {
                // the map above is changed all the same
            }
        }
    }
}
